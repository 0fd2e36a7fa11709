"""The pages the center's agent serves: kiosk, staff caller, hall display."""
