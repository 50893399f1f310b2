"""What `compile` builds: the step loss, the epoch metrics, `add_loss` terms, the saved config.

- `loss`: `CompiledLoss` (per-output losses and weights, `'crossentropy'` settled from shapes,
  class-id checks) and `LossTracker` (the epoch `loss`);
- `metrics`: `CompiledMetrics` (per-output torchmetrics accumulators, `'accuracy'` settled);
- `outputs`: which output a plain `y` trains (dict / ModelOutput / namedtuple outputs);
- `loss_terms`: `add_loss` terms;
- `config`: the record of a `compile` call that `save` / `load` keep.
"""

from kfit.compiled.loss import PROBABILISTIC_LOSSES, CompiledLoss, LossTracker
from kfit.compiled.metrics import CompiledMetrics

__all__ = ["PROBABILISTIC_LOSSES", "CompiledLoss", "CompiledMetrics", "LossTracker"]
