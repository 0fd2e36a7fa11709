"""Queue display (排队叫号屏) of one window: shows the ticket being served."""
