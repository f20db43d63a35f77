"""GEMONN's options: each checked once, as one line naming its key, and stored in its canonical type.

``GEMONN.__init__`` declares them with their defaults (its signature is what the config is checked
against); this module holds what each may be and how they constrain each other.

Beyond the paper (each off by default, so ``optimizer=gemonn`` stays the faithful method;
``optimizer=gemonn_plus`` turns them on): ``local_search_lr`` > 0 gives every evaluated
individual one masked Adam step from the gradient its evaluation gave, with moments that
travel with it (``inherit_moments``); ``exempt_biases`` never zeroes biases (``auto``: only where they are
a small share of the sparsest network, ``auto_exempt``);
``min_density`` grades the initial densities geometrically (each network keeping each entry with its row's
probability; ``exact_densities``: exactly its row's share of the entries, as ``initial_densities`` would, so the
sparsest network, and with a trunk every branch, is within its density as a budget and not above it by chance);
``mutation: magnitude`` zeroes a child's smallest weights; ``crossover_prob`` < 1 copies some pairs unchanged; ``offspring``
sets the children per generation; ``warmup`` generations first let every individual learn (scored and stepped, no children), so
dense networks are not lost to sparse ones before either has learnt anything; ``warmup_records`` N records the
warm-up's status only N times over it (and at the run's last generation), and selected on held-out data takes
the held-out score only then: a warm-up selects nothing, so the score fed only the status (null: every generation). ``trunk``
generations before those train the densest initial network alone (one evaluation each); then
every other network restarts as that one, magnitude-pruned to its own initial density, with
its moments: the population branches from one well-trained network, as iterative magnitude
pruning's stages do from its dense run. ``density_floor`` makes selection (tournaments and
survival) see a density below the floor as the floor itself: a network sparser than it is worth
no more than one at it, so the sparsest members compete on loss alone instead of pruning
themselves towards nothing, and the population stays spread over the densities above it. The
front reported keeps the true densities. ``lr_density_exponent`` p gives each network the step
size ``local_search_lr · density^(−p)``: a sparse network moves further per step (with p = ½ its
output changes by about as much per step as a dense one's, for uncorrelated updates), so one step
size no longer has to suit both ends of the front. ``trunk_prune: gradual`` prunes the trunk as it
trains instead (gradual magnitude pruning, Zhu & Gupta 2017): dense for the first
``trunk_prune_start`` of the trunk, then its density falls along the cubic schedule to the sparsest
row's by ``trunk_prune_end`` of it (1: its last generation; below, the trunk trains on at that density, as gradual
magnitude pruning's schedule ends before its run does), its mask updated 100 times; each other row branches off when the trunk
passes its density (the trunk as it stood then, pruned to that density, with its moments), so a
sparse network starts from one that was pruned a little at a time rather than all at once. The trunk
row itself ends at the sparsest density (``ggevo.ea.operators.trunk``). ``trunk_rebase`` then gives every branch, at the
trunk's last generation, the trunk's final weights and moments wherever the trunk still has any (a subset of
the branch's own entries, so its density is unchanged): the dense branches, taken early, otherwise start the
population with the least trained weights. ``prune_floor`` stops magnitude mutation there: a child
keeps at least that density (all of it, if its parent is already there), so the sparse end of the
front stays at the floor instead of drifting below it. ``eliminate_duplicates`` lets a child whose
objectives equal another network's (a copy, such as the child of a parent already at the floor)
survive only into places the distinct networks leave; ``floor_breeds: false`` keeps such copies from
being bred at all: parents are drawn only from the networks above the floor while there are any.
``band_edges`` (rising densities) lets the
best network of each band between consecutive edges survive before NSGA-II fills the other places:
a dense network that a sparse one dominates (on a small training set every network fits it, and the
sparse ones score as well) still lives on and trains, so the population keeps a member in every band.
``lr_final`` lowers every step size along a cosine over the run, from ``local_search_lr`` at the first
generation to ``lr_final`` times it at the last of ``generations`` (``ggevo-train`` sets that from the
budget or ``trainer.max_steps``); null keeps one step size throughout. ``lr_schedule: after_trunk``
keeps the step whole through the trunk and lowers it along the cosine over the evaluations after it
instead, to ``lr_final`` times it at the last of the run's ``evaluations`` (the budget; ``ggevo-train``
sets it). ``weight_decay`` λ makes the local search's step AdamW's: each live weight also loses
``lr · λ`` of itself per step (decoupled weight decay, Loshchilov & Hutter 2019), so a network that
already fits its training minibatches keeps its weights small instead of growing them to fit them harder.
"""

from __future__ import annotations

from ggevo.ea.flat import ParamLayout
from ggevo.ea.population import check_option as _check
from ggevo.ea.population import check_shared_options

CROSSOVERS = ("grad_sbx", "sbx")
MUTATIONS = ("zero", "polynomial", "magnitude")
TRUNK_PRUNES = ("oneshot", "gradual")

# ``exempt_biases: auto`` keeps every bias only while the biases are at most this share of the entries of a
# network at the sparsest density the run aims at (``prune_floor``, else ``min_density``). Exempt biases count
# towards the density, so where they are most of it the sparsest networks hold almost no weights. Set between
# the networks measured (docs/RESULTS.md, "Biases on small networks"): at 0.81 (an MLP 64-64-32 on scikit-learn's
# digits: 106 of the 131 entries at density 0.02 are biases), 1.19 (breast cancer), 1.61 (wine) and 2.2 (a tied
# autoencoder 64-32-64 on digits) zeroable biases gave members at density 0.02 where exempt ones left none; at 0.56
# (the default job's autoencoder, 784-100-784) exempt ones trained to half the loss at 0.02-0.05, and the bench's
# MNIST networks (0.08-0.19) lost with zeroable ones. Untested between 0.56 and 0.81 (the LSTM, 0.54, stays exempt).
AUTO_EXEMPT_SHARE = 2 / 3


def auto_exempt(layout: ParamLayout, sparsest: float | None) -> bool:
    """``exempt_biases: auto`` for a network of ``layout`` whose sparsest density is ``sparsest`` (None: exempt)."""
    if sparsest is None:
        return True
    biases = int((~layout.is_weight()).sum())
    return biases <= AUTO_EXEMPT_SHARE * sparsest * layout.dim


def _optional(value) -> float | None:
    return None if value is None else float(value)


def gemonn_options(o: dict) -> dict:
    """The parameter group's defaults from GEMONN's keyword arguments ``o`` (``compile`` aside), each
    checked; raises ``ValueError("optimizer.<key>: …")`` on the first bad one."""
    check_shared_options(**{k: o[k] for k in ("pop_size", "eta", "mutation_eta", "mutation_rate", "init",
                                              "weight_bound", "bias_bound", "hv_ref", "compile")})
    _check(o["crossover"] in CROSSOVERS, "crossover", f"must be one of {CROSSOVERS}, got {o['crossover']!r}")
    _check(0.0 <= o["sparsity_preservation"] <= 1.0, "sparsity_preservation",
           f"must be a probability in [0, 1], got {o['sparsity_preservation']}")
    _check(o["mutation"] in MUTATIONS, "mutation", f"must be one of {MUTATIONS}, got {o['mutation']!r}")
    offspring = o["offspring"]
    _check(offspring is None or (isinstance(offspring, int) and offspring >= 2 and offspring % 2 == 0),
           "offspring", f"must be null (= pop_size) or an even integer ≥ 2, got {offspring!r}")
    _check(0.0 <= o["crossover_prob"] <= 1.0, "crossover_prob", f"must be a probability, got {o['crossover_prob']}")
    _check(isinstance(o["exempt_biases"], bool) or o["exempt_biases"] == "auto", "exempt_biases",
           f"must be true, false or auto (by the network's share of biases), got {o['exempt_biases']!r}")
    _check(o["min_density"] is None or 0.0 < o["min_density"] <= 1.0, "min_density",
           f"must be null or in (0, 1], got {o['min_density']}")
    densities = o["initial_densities"]
    _check(densities is None or (len(list(densities)) == o["pop_size"]
                                 and all(isinstance(d, (int, float)) and 0.0 < d <= 1.0 for d in densities)),
           "initial_densities", f"must be null or pop_size ({o['pop_size']}) densities in (0, 1], got {densities!r}")
    _check(densities is None or o["graded_density"], "initial_densities", "needs graded_density: true")
    _check(not o["exact_densities"] or (o["min_density"] is not None and o["graded_density"]), "exact_densities",
           "needs min_density (the grid it makes exact) and graded_density: true")
    _check(0.0 <= o["prune_probability"] <= 1.0, "prune_probability",
           f"must be a probability, got {o['prune_probability']}")
    _check(0.0 < o["prune_fraction"] < 1.0, "prune_fraction", f"must be in (0, 1), got {o['prune_fraction']}")
    _local_search_options(o)
    _trunk_options(o)
    return dict(
        pop_size=o["pop_size"], eta=float(o["eta"]), crossover=o["crossover"],
        sparsity_preservation=float(o["sparsity_preservation"]), exchange=bool(o["exchange"]),
        mutation=o["mutation"], mutation_eta=float(o["mutation_eta"]), mutation_rate=o["mutation_rate"],
        reevaluate_parents=bool(o["reevaluate_parents"]), init=o["init"], graded_density=bool(o["graded_density"]),
        weight_bound=float(o["weight_bound"]), bias_bound=float(o["bias_bound"]),
        hv_ref=tuple(float(v) for v in o["hv_ref"]), seed=int(o["seed"]),
        offspring=offspring, crossover_prob=float(o["crossover_prob"]), exempt_biases=o["exempt_biases"],
        min_density=o["min_density"],
        initial_densities=None if densities is None else [float(d) for d in densities],
        exact_densities=bool(o["exact_densities"]),
        prune_probability=float(o["prune_probability"]),
        prune_fraction=float(o["prune_fraction"]), local_search_lr=float(o["local_search_lr"]),
        inherit_moments=bool(o["inherit_moments"]), warmup=int(o["warmup"]),
        warmup_records=None if o["warmup_records"] is None else int(o["warmup_records"]), trunk=int(o["trunk"]),
        density_floor=_optional(o["density_floor"]), lr_density_exponent=float(o["lr_density_exponent"]),
        trunk_prune=o["trunk_prune"], trunk_prune_start=float(o["trunk_prune_start"]),
        trunk_prune_end=float(o["trunk_prune_end"]),
        trunk_rebase=bool(o["trunk_rebase"]), rebase_extras=float(o["rebase_extras"]),
        prune_floor=_optional(o["prune_floor"]), eliminate_duplicates=bool(o["eliminate_duplicates"]),
        floor_breeds=bool(o["floor_breeds"]), band_edges=_band_edges(o["band_edges"]),
        lr_final=_optional(o["lr_final"]), lr_schedule=o["lr_schedule"],
        generations=None if o["generations"] is None else int(o["generations"]),
        evaluations=None if o["evaluations"] is None else int(o["evaluations"]),
        weight_decay=float(o["weight_decay"]),
    )


def _band_edges(edges) -> list[float] | None:
    if edges is None:
        return None
    edges = list(edges)
    ok = (len(edges) >= 2 and all(isinstance(e, (int, float)) and 0.0 <= e <= 1.0 for e in edges)
          and all(a < b for a, b in zip(edges, edges[1:])))
    _check(ok, "band_edges", f"must be null (off) or at least 2 rising densities in [0, 1], got {edges!r}")
    return [float(e) for e in edges]


def _local_search_options(o: dict) -> None:
    warmup, lr = o["warmup"], o["local_search_lr"]
    _check(isinstance(warmup, int) and warmup >= 0, "warmup", f"must be a number of generations ≥ 0, got {warmup!r}")
    _check(warmup == 0 or lr > 0, "warmup", "needs local search (local_search_lr > 0)")
    records = o["warmup_records"]
    _check(records is None or (isinstance(records, int) and not isinstance(records, bool) and records >= 1),
           "warmup_records", f"must be null (every warm-up generation) or a number of records ≥ 1, got {records!r}")
    _check(lr >= 0, "local_search_lr", f"must be ≥ 0 (0 = off), got {lr}")
    _check(o["density_floor"] is None or 0.0 < o["density_floor"] < 1.0, "density_floor",
           f"must be null (off) or a density in (0, 1), got {o['density_floor']!r}")
    _check(0.0 <= o["lr_density_exponent"] <= 1.0, "lr_density_exponent",
           f"must be in [0, 1] (0 = one step size for all), got {o['lr_density_exponent']!r}")
    final, total = o["lr_final"], o["generations"]
    _check(final is None or (0.0 < final <= 1.0 and lr > 0), "lr_final",
           f"must be null (a constant step) or a share of the step in (0, 1] with local search on, got {final!r}")
    _check(total is None or (isinstance(total, int) and total >= 1), "generations",
           f"must be null or the run's number of generations ≥ 1, got {total!r}")
    _check(o["lr_schedule"] in ("run", "after_trunk"), "lr_schedule",
           f"must be run (a cosine over the run's generations) or after_trunk (over the evaluations after the trunk), "
           f"got {o['lr_schedule']!r}")
    decay = o["weight_decay"]
    _check(isinstance(decay, (int, float)) and decay >= 0 and (decay == 0 or lr > 0), "weight_decay",
           f"must be ≥ 0 (0 = off), and > 0 only with local search on (local_search_lr > 0), got {decay!r}")


def _trunk_options(o: dict) -> None:
    trunk = o["trunk"]
    _check(isinstance(trunk, int) and trunk >= 0, "trunk", f"must be a number of generations ≥ 0, got {trunk!r}")
    _check(trunk == 0 or (o["local_search_lr"] > 0 and o["reevaluate_parents"]), "trunk",
           "needs local search (local_search_lr > 0) and re-scored parents (reevaluate_parents: true)")
    budget = o["evaluations"]  # lr_schedule: after_trunk's clock, read once the trunk is known good
    _check(budget is None or (isinstance(budget, int) and budget > trunk), "evaluations",
           f"must be null or the run's budget of evaluations, more than the trunk's {trunk}, got {budget!r}")
    _check(o["trunk_prune"] in TRUNK_PRUNES, "trunk_prune",
           f"must be one of {TRUNK_PRUNES}, got {o['trunk_prune']!r}")
    _check(0.0 <= o["trunk_prune_start"] < 1.0, "trunk_prune_start",
           f"must be a fraction of the trunk in [0, 1), got {o['trunk_prune_start']!r}")
    end = o["trunk_prune_end"]
    _check(isinstance(end, (int, float)) and not isinstance(end, bool) and o["trunk_prune_start"] < end <= 1.0
           and (end == 1.0 or o["trunk_prune"] == "gradual"), "trunk_prune_end",
           f"must be a fraction of the trunk in (trunk_prune_start, 1], below 1 only with trunk_prune: gradual, got {end!r}")
    _check(isinstance(o["trunk_rebase"], bool) and (not o["trunk_rebase"] or o["trunk_prune"] == "gradual"),
           "trunk_rebase", f"must be true or false, and true only with trunk_prune: gradual, got {o['trunk_rebase']!r}")
    extras = o["rebase_extras"]
    _check(isinstance(extras, (int, float)) and not isinstance(extras, bool) and 0.0 < extras <= 1.0
           and (extras == 1.0 or o["trunk_rebase"]), "rebase_extras",
           f"must be a factor in (0, 1] (1 = kept as they are), below 1 only with trunk_rebase: true, got {extras!r}")
    _check(o["prune_floor"] is None or 0.0 < o["prune_floor"] < 1.0, "prune_floor",
           f"must be null (off) or a density in (0, 1), got {o['prune_floor']!r}")
