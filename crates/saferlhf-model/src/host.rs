//! Copies between host vectors and device tensors: the one place where values cross, so that
//! a failed copy is an error naming what was copied, never a silently empty vector.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::error::{ModelError, Result};

/// The values of a float tensor as f32, row-major; `what` names it in the error.
pub fn floats<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| ModelError::InvalidInput(format!("copying {what} to the host: {e:?}")))
}

/// The values of a float tensor as f32 where the caller cannot return an error (metrics): a
/// failed copy is logged and gives NaN in every element, so the run's non-finite guard stops it
/// with an error naming the step, instead of an empty vector silently shortening a mean.
pub fn floats_or_nan<const D: usize>(t: Tensor<D>, what: &str) -> Vec<f32> {
    let n = t.shape().num_elements();
    floats(t, what).unwrap_or_else(|e| {
        log::error!("{e}");
        vec![f32::NAN; n]
    })
}

/// A `[rows, cols]` integer tensor from row-major values.
pub fn ints2(values: &[i64], shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

/// A `[rows, cols]` boolean tensor from row-major values.
pub fn bools2(values: &[bool], shape: [usize; 2], device: &Device) -> Tensor<2, Bool> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

/// A `[rows, cols]` float tensor from row-major values.
pub fn floats2(values: &[f32], shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}
