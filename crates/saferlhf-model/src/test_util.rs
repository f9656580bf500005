//! Helpers shared by this crate's unit tests.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

/// Two rows of six tokens, the first left-padded by one.
pub(crate) fn batch(device: &Device) -> (Tensor<2, Int>, Tensor<2, Bool>) {
    let ids: Vec<i64> = vec![0, 3, 7, 1, 9, 4, 5, 2, 8, 6, 11, 3];
    let mask = vec![
        false, true, true, true, true, true, true, true, true, true, true, true,
    ];
    (
        Tensor::from_data(TensorData::new(ids, [2, 6]), device),
        Tensor::from_data(TensorData::new(mask, [2, 6]), device),
    )
}

/// A float tensor's values as f32.
pub(crate) fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}
