//! Early stopping on the validation loss.

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
}
