# The service center's production image (firmware/README.md, "The production image"): the ESP32 with
# PSRAM (ESP32-WROVER-E) configured as the pinned release's ESP32_GENERIC board with its SPIRAM variant,
# plus our frozen modules and a board name of our own, so provisioning can tell this image from a stock one.
# Paths without a folder are the port's own (ports/esp32/boards/...), as the port's CMakeLists reads them.
set(IDF_TARGET esp32)

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
    boards/sdkconfig.spiram
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
