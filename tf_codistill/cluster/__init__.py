"""Launching groups, apart from running one: the local launcher (``local``), Slurm
placement and each process's TF_CONFIG (``slurm``), and Kubeflow TFJobs and TF_CONFIGs for
other schedulers (``manifests``). Each launched process runs ``tf_codistill.train``."""
