"""One worker of a MultiWorkerMirroredStrategy group that gathers and scatters carried state.

Run as ``python -m tests.helpers.carried_state_worker OUT.npz`` with TF_CONFIG set: every
replica fills its carried LM state with its own values, ``ReplicaCarriedState`` gathers
them (a collective), the state is zeroed and scattered back; OUT.npz holds the gathered
variables and the state each replica got back.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_codistill as tc  # noqa: E402
from tf_codistill.core.carried_state import ReplicaCarriedState  # noqa: E402
from tf_codistill.models.lstm_lm import LanguageModelConfig, StatefulLanguageModel  # noqa: E402


def main(out_path):
    strategy = tc.get_strategy("multi_worker")
    with strategy.scope():
        model = StatefulLanguageModel(LanguageModelConfig(vocab_size=20, embedding_dim=4,
                                                          units=3, num_layers=1), batch_size=2)
    carried = ReplicaCarriedState(model, strategy)

    def fill():
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        for index, variable in enumerate(model.carried_state_variables):
            variable.assign(tf.fill(variable.shape, tf.cast(10 * replica + index + 1,
                                                            variable.dtype)))
    tf.function(lambda: strategy.run(fill))()
    carried.gather()
    model.reset_states()
    carried.scatter()
    np.savez(out_path, worker=np.array(strategy.cluster_resolver.task_id),
             gathered=np.stack([v.numpy() for v in carried.variables]),
             restored=np.stack([strategy.experimental_local_results(v)[0].numpy()
                                for v in model.carried_state_variables]))


if __name__ == "__main__":
    main(sys.argv[1])
