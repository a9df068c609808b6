"""Why each invariant earns its place even where no zoo mutant is caught by it alone.

The kill matrix lists these beside every invariant without a unique catch;
tests/test_zoo.py requires one for each such invariant.
"""

WORTH = {
    "affine-semantics": "Pins the order γ·x̂ + β directly, so a swapped or misplaced affine step is reported as such instead of as a vague numeric disagreement.",
    "agrees-with-reference": "The broadest first alarm: any forward error beyond the derived bound, with the element, got, expected and tolerance in one line.",
    "batch-permutation-equivariance": "Catches statistics that depend on sample position (skipped, double-counted or mis-strided samples), a bug class of hand-written reductions the zoo models only through other symptoms.",
    "channel-independence": "Catches cross-channel leaks (pooled variance, wrong channel stride) without any oracle, bitwise when the kernel is reproducible.",
    "constant-channel-finite": "Guards the ε path on zero-variance channels, where a missing or misplaced ε turns into NaN or infinity rather than a small error.",
    "deterministic-forward": "Only it asks for bitwise repeatability, which atomic-add reductions and uninitialised memory break.",
    "differential-agreement": "What makes --bn-ref useful: a regression guard between two versions of a kernel on outputs, gradients and running statistics together.",
    "empty-batch": "The only check of the zero-size contract (empty output, untouched running statistics), which detection models hit in practice.",
    "eval-affine-map": "States eval mode exactly (a fixed per-channel affine map from the running statistics), so any eval bug is located in a or c.",
    "eval-matches-train-with-batch-stats": "Ties the two modes together: with the batch's own statistics as running statistics, eval must reproduce training, which catches inconsistent ε or variance conventions between the two paths.",
    "eval-no-state-change": "The only bitwise check that eval mode leaves every buffer and parameter alone.",
    "eval-per-sample-independence": "Catches any batch coupling in eval mode (batch statistics, in-place writes), which silently changes predictions with the batch composition.",
    "extreme-magnitudes": "Guards overflow of sums of squares, which torch itself fails, and which no ordinary-scale test can see.",
    "gradcheck": "An oracle-free backstop for any custom backward: finite differences need no closed form.",
    "gradgradcheck": "The only check of double backward (gradient penalties, meta-learning).",
    "half-precision-ulp": "The only ulp-level precision check of float16 and bfloat16 outputs against the correctly rounded result.",
    "input-gradient-closed-form": "Locates a wrong input gradient element by element, where gradcheck only answers yes or no.",
    "input-gradient-sums-to-zero": "The two exact moment identities of the input gradient (Σdx = 0 and x̂ᵀdx from the ε term alone), cheap and oracle-free.",
    "input-not-modified": "The only check of the input's storage bytes, strides and version counter, with and without autograd.",
    "layout-independence": "Compares layouts of the same values directly, catching stride bugs even where both layouts pass the reference by a narrow margin.",
    "no-bias-drift": "States the paper's failure as it shows in training (b drifts, the loss stays), which makes a detached-mean report self-explanatory.",
    "no-running-stats-when-untracked": "The only check of track_running_stats=False: no state kept, batch statistics in eval mode too.",
    "output-moments": "Cheap, oracle-free and interpretable: the output's per-channel mean and variance say directly whether centring or scaling is wrong.",
    "parameter-gradients": "Checks dγ and dβ directly, which the input-gradient checks never look at.",
    "running-stats-cumulative": "The only check of momentum=None, the cumulative average.",
    "running-stats-update": "The only check of one momentum update and of num_batches_tracked.",
    "scale-invariance-positive": "Oracle-free check of the ε term's placement under scaling, which eps-placement bugs break by orders of magnitude.",
    "scale-power-of-two-exact": "The only bitwise identity of the forward pass: any deviation is a real difference in algorithm, not rounding.",
    "shift-invariance": "The paper's premise, oracle-free; large shifts are what expose E[x²] − E[x]².",
    "single-value-raises": "The only check that one value per channel raises instead of returning garbage silently.",
    "variance-held-out-drift": "States the paper's 'worse if it also scales' case as training dynamics: a scale before the normalisation must not drift.",
    "weight-gradient-inverse-scale": "Catches a backward that is not homogeneous of degree −1 in W (ε in the wrong place, steps that ignore scale), bitwise where the scaling is exact.",
    "weight-gradient-radial": "Checks the radial component of the weight gradient, the quantity whose error makes weight norms drift.",
    "weight-norm-nondecreasing": "Checks the training-dynamics consequence of scale invariance, ‖W‖ never shrinking under plain gradient descent.",
    "zero-bias-gradient": "The paper's §2 claim stated exactly: the gradient of a bias before the normalisation is zero.",
}
