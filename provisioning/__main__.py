import signal
import sys

from provisioning.main import main


def _stop(signum: int, _frame: object) -> None:
    # A closed terminal (SIGHUP) or a kill (SIGTERM) ends the run like Ctrl-C does: the board is closed
    # and the run is recorded as interrupted.
    raise KeyboardInterrupt(signal.Signals(signum).name)


for _signal in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_signal, _stop)

sys.exit(main())
