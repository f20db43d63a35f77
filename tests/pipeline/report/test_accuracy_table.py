"""An ablation's table by the leaderboard's rule: each setting's test score of the member chosen on validation,
per budget (a classifier's accuracy, an autoencoder's loss)."""

from ggevo.pipeline.report.bench import held_out_markdown


def _front(density, val, test):
    return {"density": density, "val_accuracy": val, "val_loss": [1.0] * len(density), "test_accuracy": test,
            "train_loss": [0.1] * len(density), "test_loss": [1.0] * len(density)}


def _ae_front(density, val, test):
    return {"density": density, "val_loss": val, "test_loss": test, "train_loss": [0.1] * len(density)}


def test_each_cell_is_the_test_score_of_the_member_best_on_validation_mean_over_seeds():
    full = {"0": _front([0.02, 0.3], [0.90, 0.95], [0.91, 0.93]),  # at ≤ 0.5 the denser wins on val: test 0.93
            "1": _front([0.02, 0.3], [0.92, 0.91], [0.89, 0.97])}  # ... here the sparser: test 0.89
    off = {"0": _front([0.3], [0.99], [0.80]), "1": _front([0.3], [0.99], [0.90])}
    text = held_out_markdown({"gradual_off=none": full, "gradual_off=band_edges": off}, "t")
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| 0.")}
    assert rows["| 0.02"] == "| 0.02 | **0.9000** (0.9100/0.8900) | — (—/—) |"
    assert rows["| 0.5"] == "| 0.5 | **0.9100** (0.9300/0.8900) | 0.8500 (0.8000/0.9000) |"  # chosen on val, not test
    assert "| gradual_off=none | 2/2 | 2/2 |" in text and "| gradual_off=band_edges | 1/1 | 1/1 |" in text


def test_an_autoencoders_cell_is_the_test_loss_of_the_member_lowest_on_validation_the_lowest_in_bold():
    full = {"0": _ae_front([0.02, 0.3], [0.010, 0.008], [0.011, 0.009]),  # at ≤ 0.5 the denser: 0.009
            "1": _ae_front([0.02, 0.3], [0.010, 0.012], [0.012, 0.007])}  # ... here the sparser on val: 0.012
    off = {"0": _ae_front([0.3], [0.005], [0.020]), "1": _ae_front([0.3], [0.005], [0.020])}
    text = held_out_markdown({"rebase_off=none": full, "rebase_off=rebase_extras": off}, "t", classifier=False)
    assert "t: test loss of the member best on validation" in text
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| 0.")}
    assert rows["| 0.02"] == "| 0.02 | **0.01150** (0.01100/0.01200) | — (—/—) |"
    assert rows["| 0.5"] == "| 0.5 | **0.01050** (0.00900/0.01200) | 0.02000 (0.02000/0.02000) |"  # lower is better
