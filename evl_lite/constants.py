"""Names shared by every part of the package: the 12 leads and the 5 PTB-XL superclasses."""

# Standard 12-lead order of PTB-XL (and of every array in this package): [12, T].
LEADS: tuple[str, ...] = (
    "I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6",
)

# Diagnostic superclasses of the PTB-XL benchmark (Strodthoff et al. 2021), in label order: y [5].
SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")

# Benchmark split convention: strat_fold 1-8 train, 9 validation, 10 test.
SPLIT_FOLDS: dict[str, tuple[int, ...]] = {
    "train": (1, 2, 3, 4, 5, 6, 7, 8),
    "val": (9,),
    "test": (10,),
}
