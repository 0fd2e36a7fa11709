// What os.uname().machine says on a board running the production image ("<board> with <mcu>"):
// provisioning/supported_images.py refuses boards whose running image says anything else.
#define MICROPY_HW_BOARD_NAME "Service center ESP32 with SPIRAM"
#define MICROPY_HW_MCU_NAME "ESP32"
