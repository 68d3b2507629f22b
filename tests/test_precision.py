"""Round-trip error bounds and stored sizes of the teacher weight precisions."""
from hypothesis import example, given, settings, strategies as st
from hypothesis.extra import numpy as hnp
import numpy as np
import pytest
import tensorflow as tf

from tf_codistill.exchange.precision import (PRECISIONS, EncodedTensor, decode_weights, encode_weights,
                                    int8_scale, storage_dtype)


def _weights(seed=0):
    """A kernel, a conv kernel, a bias and a scalar, magnitudes in float16's normal range."""
    rng = np.random.default_rng(seed)
    signs = lambda shape: rng.choice([-1.0, 1.0], size=shape)
    magnitude = lambda shape: 10.0 ** rng.uniform(-3, 2, size=shape)
    shapes = [(16, 8), (3, 3, 4, 6), (8,), ()]
    return [(signs(s) * magnitude(s)).astype(np.float32) for s in shapes]


def _round_trip(arrays, precision):
    return decode_weights(encode_weights(arrays, precision), precision)


def test_float32_is_lossless():
    arrays = _weights()
    for before, after in zip(arrays, _round_trip(arrays, "float32")):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("precision, significand_bits", [("bfloat16", 8), ("float16", 11)])
def test_half_precisions_keep_relative_error_within_half_an_ulp(precision, significand_bits):
    arrays = _weights()
    for before, after in zip(arrays, _round_trip(arrays, precision)):
        assert after.dtype == np.float32 and after.shape == before.shape
        relative = np.abs(after - before) / np.abs(before)
        assert relative.max() <= 2.0 ** -significand_bits
        assert relative.max() > 0  # the precision really is reduced


def test_int8_error_is_at_most_half_a_step_per_output_channel():
    arrays = _weights()
    encoded = encode_weights(arrays, "int8")
    for before, tensor, after in zip(arrays, encoded, decode_weights(encoded, "int8")):
        assert tensor.values.dtype == np.int8 and np.abs(tensor.values).max() == 127
        assert np.all(np.abs(after - before) <= tensor.scale / 2 * (1 + 1e-6))


def test_int8_scale_is_per_last_axis_channel_for_rank_two_and_up_else_per_tensor():
    kernel, conv, bias, scalar = encode_weights(_weights(), "int8")
    assert kernel.scale.shape == (8,) and conv.scale.shape == (6,)
    assert bias.scale.shape == () and scalar.scale.shape == ()
    np.testing.assert_allclose(kernel.scale, np.abs(_weights()[0]).max(axis=0) / 127, rtol=1e-6)


def test_int8_keeps_an_all_zero_channel_exactly_zero():
    kernel = np.ones((4, 3), np.float32)
    kernel[:, 1] = 0.0
    (decoded,) = _round_trip([kernel], "int8")
    np.testing.assert_array_equal(decoded, kernel)
    assert int8_scale(np.zeros((0,), np.float32)) == 1.0


@settings(max_examples=60, deadline=None)
@example(np.array(8.3e-44, np.float32))  # subnormal: its scale once underflowed to 0
@example(np.array([[1e-37, -3e-39]], np.float32))
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=5),
                  elements=st.floats(-1e6, 1e6, width=32)))
def test_int8_bound_holds_for_any_finite_tensor(array):
    (tensor,) = encode_weights([array], "int8")
    (decoded,) = decode_weights([tensor], "int8")
    assert np.all(np.abs(decoded - array) <= tensor.scale / 2 * (1 + 1e-6))


def test_stored_bytes_per_precision():
    kernel = np.ones((256, 64), np.float32)
    sizes = {p: encode_weights([kernel], p)[0].nbytes for p in PRECISIONS}
    assert sizes == {"float32": 4 * 256 * 64, "bfloat16": 2 * 256 * 64,
                     "float16": 2 * 256 * 64, "int8": 256 * 64 + 4 * 64}


def test_accepts_tensors_variables_and_bfloat16_input():
    bf16 = np.ones((2, 2), storage_dtype("bfloat16"))
    inputs = [tf.constant([1.5, 2.0]), tf.Variable([[3.0]]), bf16]
    decoded = _round_trip(inputs, "float32")
    assert [d.tolist() for d in decoded] == [[1.5, 2.0], [[3.0]], [[1.0, 1.0], [1.0, 1.0]]]


def test_unknown_precision_names_the_valid_choices():
    with pytest.raises(ValueError, match="'int4'.*float32, bfloat16, float16, int8"):
        encode_weights([np.ones(2)], "int4")
    with pytest.raises(ValueError, match="choose one of"):
        decode_weights([], "fp8")


def test_refuses_weights_it_cannot_store_faithfully():
    with pytest.raises(ValueError, match="Tensor 1 .*beyond float16.*bfloat16 or int8"):
        encode_weights([np.ones(2), np.array([7e4])], "float16")
    with pytest.raises(ValueError, match="Tensor 0 holds NaN or Inf"):
        encode_weights([np.array([np.nan])], "int8")
    with pytest.raises(ValueError, match="Tensor 0 has dtype int32"):
        encode_weights([np.array([1], np.int32)], "float32")


def test_decode_rejects_a_precision_that_does_not_match_the_stored_dtype():
    encoded = encode_weights([np.ones(3)], "float16")
    with pytest.raises(ValueError, match="stored as float16.*'bfloat16' stores bfloat16"):
        decode_weights(encoded, "bfloat16")
    with pytest.raises(ValueError, match="int8 but has no scale"):
        decode_weights([EncodedTensor(np.ones(2, np.int8))], "int8")
