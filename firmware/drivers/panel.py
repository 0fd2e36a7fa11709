"""Panel drivers. Every panel has show_lines(lines).

ConsolePanel prints to the serial console: the stand-in until the pixel
panel (framebuffer with a Chinese font) lands in its own issue.
"""


class ConsolePanel:
    def __init__(self):
        self.lines = []

    def show_lines(self, lines):
        self.lines = list(lines)
        print("panel: " + " | ".join(self.lines))
