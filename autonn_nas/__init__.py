"""autonn-nas: one-shot neck architecture search for YOLOv4-P5 detectors, as a TANGO pipeline stage."""
import logging

__version__ = "0.1.0"

# A library installs no handler of its own: records go where the application routes them (the CLI and the
# stage configure logging in utils/log.py:configure_logging).
logging.getLogger(__name__).addHandler(logging.NullHandler())
