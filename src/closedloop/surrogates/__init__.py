"""The hybrid 2D surrogate of the plane: learnable FV physics plus a recurrent neural closure."""
from closedloop.surrogates.forcing import Forcing
from closedloop.surrogates.model import HybridSurrogate, SurrogateSpec
from closedloop.surrogates.metrics import relative_l2
from closedloop.surrogates.training import TrainConfig, TrainReport, train

__all__ = ["Forcing", "HybridSurrogate", "SurrogateSpec", "relative_l2", "TrainConfig",
           "TrainReport", "train"]
