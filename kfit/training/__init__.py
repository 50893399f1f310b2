"""Training: the steps, the loops and what runs them.

- `trainer`: `Trainer`, the mixin `kfit.Model` inherits: `train_step` / `test_step` /
  `predict_step` and their helpers, the loops `fit` / `evaluate` / `predict` / `*_on_batch`;
- `tracking`: the loss and metric accumulators (update per step, read once per epoch);
- `isolation`: evaluation isolated from a running `fit` (`RunLock`, accumulators set aside);
- `jit`: the whole training step compiled with `torch.compile`;
- `precision`: autocast and the gradient scaler;
- `lr_finder`: `Model.lr_find`, the learning-rate range test.
"""
