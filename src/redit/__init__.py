"""redit: reward dithering (ReDit) for GRPO-style policy optimisation on verifiable rewards."""

from redit.dither import Dither, DitherConfig
from redit.schedules import SCHEDULE_NAMES, make_schedule

__all__ = ["SCHEDULE_NAMES", "Dither", "DitherConfig", "make_schedule"]
__version__ = "0.1.0"
