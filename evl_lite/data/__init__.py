"""Records and how they become the models' splits, read in one direction.

``sources`` (where the data is: a PTB-XL path, or the synthetic default ``synthetic`` makes;
``draws`` says which synthetic seed serves what)
-> ``ptbxl`` (the PTB-XL layout: database, labels, WFDB records) -> ``preprocessing`` (filters,
resampling, standardisation) -> ``dataset`` (splits in memory, a torch Dataset) ->
``split_cache`` (prepared splits kept on disk) -> ``benchmark`` (the splits every model reads).
Beside them: ``label_budget`` (which records keep their labels), ``check`` (vet a data set
before a workshop) and ``download`` (PTB-XL from PhysioNet, verified).
"""
