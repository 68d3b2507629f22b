"""Input pipelines: Common Crawl WET files to stateful language-model batches.

    wet            streaming, fault-tolerant WET reader (FastWARC) and the counters
    filters        English, long paragraphs, optional C4 line rules
    partition      group / validation / worker shares by stable hash of WARC-Record-ID
    documents      read -> partition -> filter -> tokenize, without TensorFlow
    lm_batching    B-stream packer: row i of consecutive batches is one document stream
    training_data  build_training_dataset (WET) and build_dataset_from_shards (TFRecord)
    shards         TFRecord shard format shared by Beam and training
    beam_pipeline  the same steps on Apache Beam (optional extra, imported lazily)
    wet_stats      `python -m data_pipelines.wet_stats FILES...`
    synthetic_wet  correctly framed synthetic WET files for tests and benchmarks
"""
