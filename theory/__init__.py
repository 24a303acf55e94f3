"""Closed forms for GD and signGD on the paper's linear signal model.

Ma, Pan and Farahmand, *Understanding the robustness difference between
stochastic gradient descent and adaptive gradient methods*, TMLR 2023,
arXiv:2308.06703.
"""

from theory.gd import (
    gd_error,
    gd_is_stable,
    gd_limit,
    gd_limit_weight_norm_sq,
    gd_max_stable_lr,
    gd_weights,
)
from theory.risks import (
    adversarial_risk_l2,
    adversarial_risk_linf,
    lipschitz_constant,
    standard_risk,
    weight_norm,
)
from theory.signal import (
    PAPER_SPECTRUM,
    PAPER_W0_FREQ,
    PAPER_W_STAR_FREQ,
    PaperTraining,
    Problem,
    dct_basis,
    irrelevant_mask,
    make_problem,
    paper_problem,
    sample_freq,
    to_freq,
    to_input,
)
from theory.spectra import (
    SPECTRA,
    draw_w_star_freq,
    powerlaw_spectrum,
    relevant_band,
)
from theory.signgd import (
    NotApplicableError,
    Reason,
    SignGDPhases,
    SignGDSettled,
    require_applicable,
    signgd_drift_first_order,
    signgd_error,
    signgd_gradient_parts,
    signgd_phases,
    signgd_settled,
    signgd_step_freq,
)

__all__ = [
    "gd_error",
    "gd_is_stable",
    "gd_limit",
    "gd_limit_weight_norm_sq",
    "gd_max_stable_lr",
    "gd_weights",
    "adversarial_risk_l2",
    "adversarial_risk_linf",
    "lipschitz_constant",
    "standard_risk",
    "weight_norm",
    "PaperTraining",
    "Problem",
    "dct_basis",
    "irrelevant_mask",
    "make_problem",
    "paper_problem",
    "sample_freq",
    "to_freq",
    "to_input",
    "PAPER_SPECTRUM",
    "PAPER_W0_FREQ",
    "PAPER_W_STAR_FREQ",
    "SPECTRA",
    "draw_w_star_freq",
    "powerlaw_spectrum",
    "relevant_band",
    "NotApplicableError",
    "Reason",
    "SignGDPhases",
    "SignGDSettled",
    "require_applicable",
    "signgd_drift_first_order",
    "signgd_error",
    "signgd_gradient_parts",
    "signgd_phases",
    "signgd_settled",
    "signgd_step_freq",
]
