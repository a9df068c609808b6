"""The table of RNG streams: what each ``Problem.generator(stream)`` number draws.

A Problem seeds one CPU generator per stream from (seed, stream), so streams are
independent.  Numbers are shared only between draws that never meet in one invariant
(each invariant's check uses at most one of the uses of a number); the self-test
tests/test_strategies.py holds this table against the code.
"""
VALUES = 0                 # the input's values (Problem.values, through its regime)
AFFINE = 1                 # γ and β (Problem.affine)
COTANGENT = 2              # the upstream gradient g (Problem.cotangent)
SHIFT = 3                  # per-channel shifts b of shift-invariance
BIAS = 4                   # the bias b before the batch norm (zero-bias-gradient)
MIXING_WEIGHT = 5          # W of the scale-invariant-weights families (x = W u)
RUNNING_START = 5          # running statistics before the step (running-statistics family)
BATCH_PERMUTATION = 5      # the permutation of batch-permutation-invariance
EVAL_RUNNING_STATS = 6     # running statistics stored for eval mode
REPLACED_CHANNEL = 6       # the new values of channel-independence
SCALE_DESCENT = 6          # the scale a of variance-held-out-drift
SEEDED_BUFFERS = 7         # buffers away from their defaults (degenerate inputs)
MAGNITUDES = 8             # the magnitudes of extreme-magnitudes
