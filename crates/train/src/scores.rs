//! The loss the network is trained on and the scores of each epoch's validation.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use hits_core::confusion::Confusion;
use model::channels_last::ChannelsLastOps;
use model::{Classifier, stamps_tensor};

use crate::TrainError;
use crate::fit::Examples;

/// Per-sample loss weights: inverse class frequency (n / (2 n_c)) or all ones.
pub(crate) fn class_weights(labels: &[u8], balanced: bool) -> [f32; 2] {
    if !balanced {
        return [1.0, 1.0];
    }
    let n = labels.len() as f32;
    let real = labels.iter().filter(|&&l| l == 1).count() as f32;
    [n / (2.0 * (n - real).max(1.0)), n / (2.0 * real.max(1.0))]
}

/// Mean weighted cross-entropy of `(N, 2)` logits against one-hot targets, and the number of
/// correct argmax predictions.
pub(crate) fn loss_and_correct<B: Backend>(
    logits: Tensor<B, 2>,
    labels: &[u8],
    weights: [f32; 2],
) -> (Tensor<B, 1>, usize) {
    let device = logits.device();
    let n = labels.len();
    let mut target = Vec::with_capacity(2 * n);
    for &l in labels {
        let w = weights[l as usize];
        target.extend_from_slice(&if l == 1 { [0.0, w] } else { [w, 0.0] });
    }
    let target = Tensor::<B, 2>::from_data(TensorData::new(target, [n, 2]), &device);
    let values = logit_values(&logits);
    let correct = labels
        .iter()
        .enumerate()
        .filter(|&(i, &l)| u8::from(values[2 * i + 1] > values[2 * i]) == l)
        .count();
    let loss = log_softmax(logits, 1)
        .mul(target)
        .sum()
        .neg()
        .div_scalar(n as f32);
    (loss, correct)
}

fn logit_values<B: Backend>(logits: &Tensor<B, 2>) -> Vec<f32> {
    logits
        .to_data()
        .convert::<f32>()
        .into_vec()
        .expect("f32 logits")
}

/// Validation scores: unweighted mean loss, accuracy and F1 of the real class at p = 0.5.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidationScores {
    pub loss: f64,
    pub accuracy: f64,
    pub f1: f64,
}

/// [`ValidationScores`] of `model` (inference mode) on `data`, in batches of `batch`.
///
/// On the CPU the batches run in parallel, as `Classifier::predict`'s passes do (the dense
/// layers and the loss are serial within a batch); their losses and counts are added in
/// batch order, so the scores do not depend on the threads.
pub fn validation_scores<B: ChannelsLastOps>(
    model: &Classifier<B>,
    data: &Examples,
    batch: usize,
    device: &B::Device,
) -> Result<ValidationScores, TrainError>
where
    Classifier<B>: Sync,
{
    if data.is_empty() {
        return Ok(ValidationScores {
            loss: f64::NAN,
            accuracy: f64::NAN,
            f1: f64::NAN,
        });
    }
    let batch = batch.max(1);
    // One batch's logits, loss and correct count.
    let score = |(k, labels): (usize, &[u8])| -> Result<(Vec<f32>, f64, usize), TrainError> {
        let start = k * batch;
        let x = stamps_tensor::<B>(&data.stamps.range(start..start + labels.len())?, device);
        let logits = model.forward(x);
        let values = logit_values(&logits);
        let (loss, correct) = loss_and_correct(logits, labels, [1.0, 1.0]);
        Ok((values, loss.into_scalar().elem::<f64>(), correct))
    };
    let scored: Vec<(Vec<f32>, f64, usize)> = if B::chains_blocks() {
        use rayon::prelude::*;
        data.labels
            .par_chunks(batch)
            .enumerate()
            .map(score)
            .collect::<Result<_, _>>()?
    } else {
        data.labels
            .chunks(batch)
            .enumerate()
            .map(score)
            .collect::<Result<_, _>>()?
    };
    let (mut loss, mut correct) = (0.0, 0);
    let mut confusion = Confusion::default();
    for ((values, batch_loss, batch_correct), labels) in
        scored.iter().zip(data.labels.chunks(batch))
    {
        for (i, &l) in labels.iter().enumerate() {
            confusion.add(l == 1, values[2 * i + 1] > values[2 * i]);
        }
        loss += batch_loss * labels.len() as f64;
        correct += batch_correct;
    }
    Ok(ValidationScores {
        loss: loss / data.len() as f64,
        accuracy: correct as f64 / data.len() as f64,
        f1: confusion.f1(),
    })
}
