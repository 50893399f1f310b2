"""Training: what `compile` decided, the steps, the loops and what runs them.

- `state`: `CompileState`, everything `compile` decides, built before the model changes;
- `tracking`: `MetricTracking`, the loss and metric accumulators (update each step, read once
  per epoch);
- `step`: `Step`, `train_step` / `test_step` / `predict_step` and their helpers;
- `loops`: `Loops`, the batch loop, `evaluate`, `predict` and `*_on_batch`;
- `trainer`: `Trainer`, `fit` (its data, its callbacks, its epochs); `kfit.Model` inherits it;
- `arguments`, `interrupt`: the loops' argument checks; Ctrl-C held until a batch ends;
- `isolation`: evaluation isolated from a running `fit` (`RunLock`, accumulators set aside);
- `jit`: the whole training step compiled with `torch.compile`;
- `precision`: autocast and the gradient scaler;
- `lr_finder`: `Model.lr_find`, the learning-rate range test.
"""
