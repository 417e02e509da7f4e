"""Speaker verification, one module per step.

* :mod:`~speechbrain_dyncp.verification.trials`: trial lists (read, ids, write scores);
* :mod:`~speechbrain_dyncp.verification.embedding`: embedding functions, model folders,
  embeddings of utterance manifests;
* :mod:`~speechbrain_dyncp.verification.scoring`: cosine scores and score normalisation
  (z-, t-, s-norm, AS-norm);
* :mod:`~speechbrain_dyncp.verification.metrics`: EER, minDCF, Cllr, minCllr;
* :mod:`~speechbrain_dyncp.verification.calibration`: quality-aware calibration to LLRs;
* :mod:`~speechbrain_dyncp.verification.pipeline`: manifests -> embeddings -> scores -> metrics.
"""
