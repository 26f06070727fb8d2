//! Early stopping on the validation loss, and the end-of-epoch report both nets share.

/// What the stopper says after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The validation loss is the best so far: keep these weights.
    Improved,
    /// No improvement, but fewer than `patience` epochs in a row.
    Wait,
    /// `patience` epochs in a row without improvement: stop.
    Stop,
}

/// Tracks the best validation loss and how long it has not improved.
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    patience: usize,
    best: Option<(usize, f64)>,
    since_best: usize,
}

impl EarlyStopping {
    /// A stopper that gives up after `patience` epochs without a lower validation loss.
    pub fn new(patience: usize) -> EarlyStopping {
        EarlyStopping {
            patience,
            best: None,
            since_best: 0,
        }
    }

    /// Records epoch `epoch` (1-based) with its validation loss.
    ///
    /// Only a strictly lower loss counts as an improvement, so a plateau ends training.
    pub fn observe(&mut self, epoch: usize, valid_loss: f64) -> Verdict {
        let improved = match self.best {
            None => true,
            Some((_, best)) => valid_loss < best,
        };
        if improved {
            self.best = Some((epoch, valid_loss));
            self.since_best = 0;
            return Verdict::Improved;
        }
        self.since_best += 1;
        if self.since_best >= self.patience {
            Verdict::Stop
        } else {
            Verdict::Wait
        }
    }

    /// The best epoch (1-based) and its validation loss.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best
    }
}

/// The figures of one finished epoch.
#[derive(Debug, Clone, Copy)]
pub struct EpochFigures {
    /// 1-based epoch and the configured number of epochs.
    pub epoch: usize,
    pub n_epochs: usize,
    pub train_loss: f64,
    pub valid_loss: f64,
    /// `None` when the valid split holds only one class.
    pub valid_auc: Option<f64>,
    pub seconds: f64,
}

/// Ends an epoch: a non-finite loss is an error that names the config `section` whose
/// learning rate to lower; otherwise one log line (readable when stderr is not a terminal)
/// and the bar message. `extra` is appended inside the parentheses of the log line.
pub fn report_epoch(
    section: &str,
    figures: &EpochFigures,
    extra: &str,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    let EpochFigures {
        epoch,
        n_epochs,
        train_loss,
        valid_loss,
        valid_auc,
        seconds,
    } = *figures;
    if !train_loss.is_finite() || !valid_loss.is_finite() {
        anyhow::bail!(
            "epoch {epoch}: the loss is not finite (train {train_loss}, valid {valid_loss}); \
             lower [{section}] learning_rate"
        );
    }
    let auc_text = valid_auc.map_or("n/a".to_string(), |a| format!("{a:.4}"));
    tracing::info!(
        "epoch {epoch}/{n_epochs}: train loss {train_loss:.5}, valid loss {valid_loss:.5}, \
         valid AUC {auc_text} ({seconds:.1} s{extra})"
    );
    bar.set_message(format!(
        "train {train_loss:.4} valid {valid_loss:.4} AUC {auc_text}"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_patience_epochs_without_improvement() {
        let mut stopper = EarlyStopping::new(2);
        assert_eq!(stopper.observe(1, 1.0), Verdict::Improved);
        assert_eq!(stopper.observe(2, 0.9), Verdict::Improved);
        assert_eq!(stopper.observe(3, 0.95), Verdict::Wait);
        assert_eq!(stopper.observe(4, 0.9), Verdict::Stop);
        assert_eq!(stopper.best(), Some((2, 0.9)));
    }

    #[test]
    fn an_improvement_resets_the_count() {
        let mut stopper = EarlyStopping::new(2);
        stopper.observe(1, 1.0);
        assert_eq!(stopper.observe(2, 1.1), Verdict::Wait);
        assert_eq!(stopper.observe(3, 0.5), Verdict::Improved);
        assert_eq!(stopper.observe(4, 0.6), Verdict::Wait);
        assert_eq!(stopper.best(), Some((3, 0.5)));
    }

    #[test]
    fn report_epoch_rejects_a_non_finite_loss_naming_the_section() {
        let figures = EpochFigures {
            epoch: 3,
            n_epochs: 5,
            train_loss: f64::NAN,
            valid_loss: 1.0,
            valid_auc: None,
            seconds: 0.1,
        };
        let bar = indicatif::ProgressBar::hidden();
        let message = report_epoch("twotower", &figures, "", &bar)
            .unwrap_err()
            .to_string();
        assert!(message.contains("epoch 3") && message.contains("[twotower] learning_rate"));
        let fine = EpochFigures {
            train_loss: 0.5,
            ..figures
        };
        report_epoch("twotower", &fine, "", &bar).unwrap();
    }
}
