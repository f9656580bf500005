//! Scoring prompt/response texts with a trained reward or cost model (what `saferlhf score`
//! runs), with the same encoding and truncation as training.

use burn::tensor::Device;
use saferlhf_model::{ScoreModel, ScoreType};

use crate::collate::{Encoder, EndToken, pad_rows};
use crate::error::Result;
use crate::losses::to_host;

/// End scores of `(prompt, response)` items, in order, `batch_size` sequences per forward.
/// `model` should be a validation copy (`model.valid()`) on a device without autodiff.
pub fn score_texts<K: ScoreType>(
    model: &ScoreModel<K>,
    encoder: &Encoder,
    items: &[(String, String)],
    batch_size: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    let mut scores = Vec::with_capacity(items.len());
    for chunk in items.chunks(batch_size.max(1)) {
        let encoded = chunk
            .iter()
            .map(|(p, r)| encoder.encode(p, r, EndToken::Always))
            .collect::<Result<Vec<_>>>()?;
        let rows: Vec<&[u32]> = encoded.iter().map(|e| e.tokens.as_slice()).collect();
        let (tokens, mask) = pad_rows(&rows, encoder.pad_id(), device);
        let out = model.forward(tokens, mask);
        scores.extend(to_host(&out.end_scores));
    }
    Ok(scores)
}
