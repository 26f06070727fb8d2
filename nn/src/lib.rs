//! Candle building blocks shared by relvid's two neural stages (`stage-coordinate` and
//! `stage-twotower`): device choice, seeded parameters, MLPs, sparse embedding tables with
//! lazy Adam, data-parallel shards of a batch, per-epoch samples, numerically safe losses
//! and cosines, early stopping, AUC and finiteness checks.
//!
//! Reads and writes no data files itself; [`params::save_safetensors`] writes a model file
//! atomically for the stages.
//!
//! Why the seeding is ours: candle's CPU device cannot be seeded, so every initial weight is
//! drawn from a ChaCha stream of `common::rng` and copied into the `VarMap`. Embedding tables
//! live outside candle's autograd ([`sparse::SparseEmbedding`]): each batch gathers only the
//! rows it uses, and only those rows are updated, which keeps a step's cost independent of
//! the catalogue size.

pub mod batches;
pub mod device;
pub mod early;
pub mod finite;
pub mod loss;
pub mod metrics;
pub mod mlp;
pub mod optim;
pub mod params;
pub mod shards;
pub mod sparse;

pub use device::{select_device, DeviceKind};
pub use early::{report_epoch, EarlyStopping, EpochFigures, Verdict};
pub use loss::{l2_normalise, log_loss_with_logits, softplus};
pub use metrics::auc;
pub use mlp::Mlp;
pub use optim::AdamConfig;
pub use params::Params;
pub use sparse::{Dedup, SparseEmbedding};
