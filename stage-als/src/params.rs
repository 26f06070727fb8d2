//! The `[als]` section of the dataset configuration and its validated form.
//!
//! Every key can be overridden per objective (`als = { mode = "implicit" }` in the
//! `[[objective]]` entry). `AlsSection::validate` checks every rule before any data is read
//! and turns the text options into enums, one `common::Error::Param` per broken rule.

use common::error::param_error;
use common::Error;
use serde::{Deserialize, Serialize};

pub use crate::similarity::Similarity;

/// Largest accepted factor count; beyond it the k x k systems stop fitting in cache and a
/// typo (6400 for 64) would allocate gigabytes.
pub const MAX_FACTORS: usize = 1024;

/// Largest accepted iteration count.
pub const MAX_ITERATIONS: usize = 100_000;

/// Range of `init_std`. Below it the factors round to (near) zero in f32 and stay there; far
/// above it the first sweeps spend themselves undoing the initial scale (a factor's
/// typical norm is init_std x sqrt(k); 10 is already far above any useful start).
pub const MIN_INIT_STD: f64 = 1e-6;
pub const MAX_INIT_STD: f64 = 10.0;

/// The `[als]` section as written in the TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlsSection {
    /// `"explicit"`: squared loss on observed cells only; `"implicit"`: weighted loss over
    /// every cell (Hu, Koren, Volinsky 2008). Default "explicit".
    pub mode: String,
    /// What a row contributes: `"label"` (the objective's 0/1 label) or a signal name such
    /// as `"rating"` or `"play_time_ms"` (the regression target in explicit mode; the
    /// confidence 1 + alpha * value of a positive row in implicit mode). Default "label".
    pub value: String,
    /// Latent dimension k, 1..=1024. Default 32.
    pub factors: usize,
    /// L2 weight lambda, >= 0 (0 only with the Cholesky solver). Default 0.1.
    pub regularization: f64,
    /// `"count"`: lambda times the row's number of observations (ALS-WR, as Spark MLlib
    /// does; its cells, or its rating rows under `repeated_ratings = "each"`); `"none"`:
    /// plain lambda. Default "count".
    pub lambda_scaling: String,
    /// Explicit mode: how train rows that repeat a (user, video) pair count.
    /// `"mean"`: the pair is one observation of its rows' mean rating, so a user who rated
    /// a video twice does not pull it twice as hard; this is the model Spark MLlib fits
    /// once a log is reduced to one mean rating per pair (a group-by mean first).
    /// `"each"`: every row is an observation, as Spark MLlib's ALS adds rating rows to its
    /// normal equations: a pair with n rows and mean m weighs n in the squared loss
    /// (n (m - x·y)^2) and counts n times in count-scaled lambda, so on a raw log this
    /// reproduces Spark's fit. The two agree on a log without repeated pairs. Implicit
    /// mode takes only "mean" (repeated rows already add up their confidence there).
    /// Default "mean".
    pub repeated_ratings: String,
    /// Alternating sweeps (users, then videos), >= 1. Default 10.
    pub iterations: usize,
    /// Implicit mode: confidence 1 + alpha * value of a positive row, and 1 + alpha of a
    /// row whose label is 0 (an explicit negative). >= 0. Default 10.0.
    pub alpha: f64,
    /// `"cholesky"`: exact solve of each k x k system; `"cg"`: `cg_steps` conjugate-gradient
    /// steps warm-started from the previous factor (cheaper, approximate, as the implicit
    /// library does); `"auto"`: cg in implicit mode with regularization > 0 (where it is
    /// 2 to 3 times faster), cholesky otherwise (explicit mode, and regularization 0, where
    /// only Cholesky can report a singular system). Default "auto".
    pub solver: String,
    /// Conjugate-gradient steps per row and sweep, >= 1. Default 3.
    pub cg_steps: usize,
    /// Stop when the validation RMSE (explicit) or ranking loss (implicit) improves by less
    /// than this between iterations (the training loss when there is no validation data);
    /// 0 = run every iteration. >= 0. Default 0.
    pub early_stop_tolerance: f64,
    /// Standard deviation of the Gaussian initial factors, in [1e-6, 10]. Default 0.1.
    pub init_std: f64,
    /// The linear score of a candidate pair (`similarity`): `"audience"`, the mean factor
    /// of the users with a training cell on the source dotted with the candidate's factor,
    /// or `"cosine"`, the cosine of the two videos' factors. Default "audience".
    pub similarity: String,
}

impl Default for AlsSection {
    fn default() -> Self {
        AlsSection {
            mode: "explicit".to_string(),
            value: "label".to_string(),
            factors: 32,
            regularization: 0.1,
            lambda_scaling: "count".to_string(),
            repeated_ratings: "mean".to_string(),
            iterations: 10,
            alpha: 10.0,
            solver: "auto".to_string(),
            cg_steps: 3,
            early_stop_tolerance: 0.0,
            init_std: 0.1,
            similarity: "audience".to_string(),
        }
    }
}

/// Which loss ALS minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Explicit,
    Implicit,
}

/// What a training row contributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ValueSource {
    /// The objective's 0/1 label.
    Label,
    /// A feedback signal of interactions.parquet.
    Signal(String),
}

/// How lambda grows with a row's observations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LambdaScaling {
    /// lambda * n_u (ALS-WR).
    Count,
    /// lambda.
    None,
}

/// How explicit mode counts train rows that repeat a (user, video) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepeatedRatings {
    /// One observation of the rows' mean rating (`matrix::RatingsCsr`).
    Mean,
    /// Every row is an observation, as in Spark MLlib (`matrix::RatingRowsCsr`).
    Each,
}

/// How each k x k system is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    Cholesky,
    Cg,
}

/// Everything the alternating least squares loop needs, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitParams {
    pub factors: usize,
    pub regularization: f64,
    pub lambda_scaling: LambdaScaling,
    pub iterations: usize,
    pub solver: Solver,
    pub cg_steps: usize,
    pub early_stop_tolerance: f64,
    pub init_std: f64,
    /// Seed of the initial factors and of the sampled validation negatives.
    pub seed: u64,
}

impl FitParams {
    /// The defaults of the `[als]` section with the given seed; change fields as needed.
    pub fn defaults(seed: u64) -> FitParams {
        AlsSection::default()
            .validate(seed)
            .expect("the defaults are valid")
            .fit
    }
}

/// The validated `[als]` section of one objective.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlsParams {
    pub mode: Mode,
    pub value: ValueSource,
    pub repeated_ratings: RepeatedRatings,
    pub alpha: f64,
    pub similarity: Similarity,
    pub fit: FitParams,
}

impl AlsSection {
    /// Checks every rule and returns typed parameters; the first broken rule is the error.
    pub fn validate(&self, seed: u64) -> Result<AlsParams, Error> {
        let mode = match self.mode.as_str() {
            "explicit" => Mode::Explicit,
            "implicit" => Mode::Implicit,
            other => {
                return Err(param_error(
                    "mode",
                    quoted(other),
                    "use \"explicit\" or \"implicit\"",
                ))
            }
        };
        let value = match self.value.as_str() {
            "label" => ValueSource::Label,
            signal if common::schema::is_signal(signal) => ValueSource::Signal(signal.to_string()),
            other => {
                return Err(param_error(
                    "value",
                    quoted(other),
                    &format!(
                        "use \"label\" or a signal: {}, {}",
                        common::schema::BOOL_SIGNALS.join(", "),
                        common::schema::NUMERIC_SIGNALS.join(", ")
                    ),
                ))
            }
        };
        if self.factors == 0 || self.factors > MAX_FACTORS {
            return Err(param_error(
                "factors",
                self.factors,
                &format!("must lie in 1..={MAX_FACTORS}"),
            ));
        }
        if !self.regularization.is_finite() || self.regularization < 0.0 {
            return Err(param_error(
                "regularization",
                self.regularization,
                "must be finite and >= 0",
            ));
        }
        let lambda_scaling = match self.lambda_scaling.as_str() {
            "count" => LambdaScaling::Count,
            "none" => LambdaScaling::None,
            other => {
                return Err(param_error(
                    "lambda_scaling",
                    quoted(other),
                    "use \"count\" or \"none\"",
                ))
            }
        };
        let repeated_ratings = match self.repeated_ratings.as_str() {
            "mean" => RepeatedRatings::Mean,
            "each" => RepeatedRatings::Each,
            other => {
                return Err(param_error(
                    "repeated_ratings",
                    quoted(other),
                    "use \"mean\" or \"each\"",
                ))
            }
        };
        // Implicit cells already sum the confidence of every repeated row; "each" would
        // only change the lambda count, which is not what the key promises.
        if repeated_ratings == RepeatedRatings::Each && mode == Mode::Implicit {
            return Err(param_error(
                "repeated_ratings",
                quoted(&self.repeated_ratings),
                "applies to mode \"explicit\" only (implicit mode already adds up the \
                 confidence of repeated rows); set it in the explicit objective's \
                 als = { ... }",
            ));
        }
        if self.iterations == 0 || self.iterations > MAX_ITERATIONS {
            return Err(param_error(
                "iterations",
                self.iterations,
                &format!("must lie in 1..={MAX_ITERATIONS}"),
            ));
        }
        if !self.alpha.is_finite() || self.alpha < 0.0 {
            return Err(param_error("alpha", self.alpha, "must be finite and >= 0"));
        }
        let solver = match self.solver.as_str() {
            "cholesky" => Solver::Cholesky,
            "cg" => Solver::Cg,
            "auto" if mode == Mode::Implicit && self.regularization > 0.0 => Solver::Cg,
            "auto" => Solver::Cholesky,
            other => {
                return Err(param_error(
                    "solver",
                    quoted(other),
                    "use \"auto\", \"cholesky\" or \"cg\"",
                ))
            }
        };
        if self.cg_steps == 0 {
            return Err(param_error("cg_steps", self.cg_steps, "must be >= 1"));
        }
        // Conjugate gradient cannot tell a singular system from a slow one: it would return
        // an arbitrary factor where Cholesky reports the entity.
        if solver == Solver::Cg && self.regularization == 0.0 {
            return Err(param_error(
                "regularization",
                self.regularization,
                "must be > 0 with solver \"cg\" (use \"cholesky\" to detect singular systems)",
            ));
        }
        if !self.early_stop_tolerance.is_finite() || self.early_stop_tolerance < 0.0 {
            return Err(param_error(
                "early_stop_tolerance",
                self.early_stop_tolerance,
                "must be finite and >= 0 (0 = off)",
            ));
        }
        if !(MIN_INIT_STD..=MAX_INIT_STD).contains(&self.init_std) {
            return Err(param_error(
                "init_std",
                self.init_std,
                &format!("must lie in [{MIN_INIT_STD}, {MAX_INIT_STD}]"),
            ));
        }

        let similarity = match self.similarity.as_str() {
            "audience" => Similarity::Audience,
            "cosine" => Similarity::Cosine,
            other => {
                return Err(param_error(
                    "similarity",
                    quoted(other),
                    "use \"audience\" or \"cosine\"",
                ))
            }
        };

        Ok(AlsParams {
            mode,
            value,
            repeated_ratings,
            alpha: self.alpha,
            similarity,
            fit: FitParams {
                factors: self.factors,
                regularization: self.regularization,
                lambda_scaling,
                iterations: self.iterations,
                solver,
                cg_steps: self.cg_steps,
                early_stop_tolerance: self.early_stop_tolerance,
                init_std: self.init_std,
                seed,
            },
        })
    }
}

fn quoted(text: &str) -> String {
    format!("\"{text}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(section: AlsSection) -> String {
        section.validate(1).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid_and_typed() {
        let params = AlsSection::default().validate(7).unwrap();
        assert_eq!(params.mode, Mode::Explicit);
        assert_eq!(params.value, ValueSource::Label);
        assert_eq!(params.fit.factors, 32);
        assert_eq!(params.fit.lambda_scaling, LambdaScaling::Count);
        assert_eq!(params.fit.solver, Solver::Cholesky);
        assert_eq!(params.fit.seed, 7);
    }

    #[test]
    fn signal_value_is_accepted() {
        let section = AlsSection {
            value: "rating".into(),
            ..Default::default()
        };
        assert_eq!(
            section.validate(1).unwrap().value,
            ValueSource::Signal("rating".into())
        );
    }

    #[test]
    fn rejects_unknown_mode() {
        assert!(error_of(AlsSection {
            mode: "bayesian".into(),
            ..Default::default()
        })
        .contains("invalid parameter mode = \"bayesian\""));
    }

    #[test]
    fn rejects_unknown_value() {
        let message = error_of(AlsSection {
            value: "stars".into(),
            ..Default::default()
        });
        assert!(
            message.contains("value = \"stars\"") && message.contains("rating"),
            "{message}"
        );
    }

    #[test]
    fn rejects_zero_factors() {
        assert!(error_of(AlsSection {
            factors: 0,
            ..Default::default()
        })
        .contains("factors = 0"));
    }

    #[test]
    fn rejects_too_many_factors() {
        assert!(error_of(AlsSection {
            factors: 6400,
            ..Default::default()
        })
        .contains("factors = 6400"));
    }

    #[test]
    fn rejects_negative_regularization() {
        assert!(error_of(AlsSection {
            regularization: -0.1,
            ..Default::default()
        })
        .contains("regularization = -0.1"));
    }

    #[test]
    fn rejects_nan_regularization() {
        assert!(error_of(AlsSection {
            regularization: f64::NAN,
            ..Default::default()
        })
        .contains("regularization = NaN"));
    }

    #[test]
    fn rejects_unknown_lambda_scaling() {
        assert!(error_of(AlsSection {
            lambda_scaling: "users".into(),
            ..Default::default()
        })
        .contains("lambda_scaling = \"users\""));
    }

    #[test]
    fn repeated_ratings_default_to_the_mean() {
        let params = AlsSection::default().validate(1).unwrap();
        assert_eq!(params.repeated_ratings, RepeatedRatings::Mean);
        let implicit = AlsSection {
            mode: "implicit".into(),
            ..Default::default()
        };
        assert_eq!(
            implicit.validate(1).unwrap().repeated_ratings,
            RepeatedRatings::Mean
        );
    }

    #[test]
    fn each_repeated_rating_is_accepted_in_explicit_mode() {
        let section = AlsSection {
            repeated_ratings: "each".into(),
            ..Default::default()
        };
        assert_eq!(
            section.validate(1).unwrap().repeated_ratings,
            RepeatedRatings::Each
        );
    }

    #[test]
    fn similarity_defaults_to_the_audience_and_rejects_unknown_names() {
        let params = AlsSection::default().validate(1).unwrap();
        assert_eq!(params.similarity, Similarity::Audience);
        let cosine = AlsSection {
            similarity: "cosine".into(),
            ..AlsSection::default()
        };
        assert_eq!(cosine.validate(1).unwrap().similarity, Similarity::Cosine);
        let message = AlsSection {
            similarity: "dot".into(),
            ..AlsSection::default()
        }
        .validate(1)
        .unwrap_err()
        .to_string();
        assert!(
            message.contains("similarity = \"dot\": use \"audience\" or \"cosine\""),
            "{message}"
        );
    }

    #[test]
    fn rejects_unknown_repeated_ratings() {
        let message = error_of(AlsSection {
            repeated_ratings: "sum".into(),
            ..Default::default()
        });
        assert!(
            message.contains("repeated_ratings = \"sum\": use \"mean\" or \"each\""),
            "{message}"
        );
    }

    #[test]
    fn rejects_each_repeated_rating_in_implicit_mode() {
        let message = error_of(AlsSection {
            mode: "implicit".into(),
            repeated_ratings: "each".into(),
            ..Default::default()
        });
        assert!(
            message.contains("repeated_ratings = \"each\": applies to mode \"explicit\" only"),
            "{message}"
        );
    }

    #[test]
    fn repeated_ratings_is_read_from_an_objective_override() {
        let text = "[dataset]\nname = \"t\"\nformat = \"synthetic\"\n[als]\nmode = \"implicit\"\n\
                    [[objective]]\nname = \"like\"\nlabel = \"like\"\nweight = 1.0\n\
                    [[objective]]\nname = \"rating\"\nlabel = \"rating >= 4\"\nweight = 1.0\n\
                    als = { mode = \"explicit\", value = \"rating\", repeated_ratings = \"each\" }\n";
        let config = common::PipelineConfig::parse(text, std::path::Path::new("t.toml")).unwrap();
        let rule = |objective: &str| {
            config
                .objective_section::<AlsSection>("als", objective)
                .unwrap()
                .validate(1)
                .unwrap()
                .repeated_ratings
        };
        assert_eq!(rule("rating"), RepeatedRatings::Each);
        assert_eq!(rule("like"), RepeatedRatings::Mean);
    }

    #[test]
    fn rejects_zero_iterations() {
        assert!(error_of(AlsSection {
            iterations: 0,
            ..Default::default()
        })
        .contains("iterations = 0"));
    }

    #[test]
    fn rejects_negative_alpha() {
        assert!(error_of(AlsSection {
            alpha: -1.0,
            ..Default::default()
        })
        .contains("alpha = -1"));
    }

    #[test]
    fn rejects_unknown_solver() {
        assert!(error_of(AlsSection {
            solver: "lu".into(),
            ..Default::default()
        })
        .contains("solver = \"lu\""));
    }

    #[test]
    fn rejects_zero_cg_steps() {
        assert!(error_of(AlsSection {
            cg_steps: 0,
            ..Default::default()
        })
        .contains("cg_steps = 0"));
    }

    #[test]
    fn auto_solver_is_cg_only_for_regularized_implicit_mode() {
        let solver = |mode: &str, regularization: f64| {
            AlsSection {
                mode: mode.into(),
                regularization,
                ..Default::default()
            }
            .validate(1)
            .unwrap()
            .fit
            .solver
        };
        assert_eq!(solver("implicit", 0.1), Solver::Cg);
        assert_eq!(solver("implicit", 0.0), Solver::Cholesky);
        assert_eq!(solver("explicit", 0.1), Solver::Cholesky);
    }

    #[test]
    fn rejects_cg_without_regularization() {
        let section = AlsSection {
            solver: "cg".into(),
            regularization: 0.0,
            ..Default::default()
        };
        assert!(error_of(section).contains("with solver \"cg\""));
    }

    #[test]
    fn accepts_zero_regularization_with_cholesky() {
        let section = AlsSection {
            regularization: 0.0,
            ..Default::default()
        };
        assert_eq!(section.validate(1).unwrap().fit.regularization, 0.0);
    }

    #[test]
    fn rejects_negative_early_stop_tolerance() {
        assert!(error_of(AlsSection {
            early_stop_tolerance: -1e-3,
            ..Default::default()
        })
        .contains("early_stop_tolerance = -0.001"));
    }

    #[test]
    fn rejects_init_std_outside_its_range() {
        for (value, shown) in [
            (0.0, "init_std = 0"),
            (1e-50, "init_std = 0.0000"),
            (1e4, "init_std = 10000"),
        ] {
            let message = error_of(AlsSection {
                init_std: value,
                ..Default::default()
            });
            assert!(
                message.contains(shown) && message.contains("[0.000001, 10]"),
                "{message}"
            );
        }
        assert!(AlsSection {
            init_std: MAX_INIT_STD,
            ..Default::default()
        }
        .validate(1)
        .is_ok());
    }

    #[test]
    fn unknown_keys_are_rejected_by_the_parser() {
        let parsed: Result<AlsSection, _> = toml_like("factor = 3");
        assert!(parsed.is_err());
    }

    /// Parses an `[als]` body the way the stage reads it: through common's config loader.
    fn toml_like(line: &str) -> anyhow::Result<AlsSection> {
        let text = format!(
            "[dataset]\nname = \"t\"\nformat = \"synthetic\"\n[als]\n{line}\n\
             [[objective]]\nname = \"like\"\nlabel = \"like\"\nweight = 1.0\n"
        );
        let config = common::PipelineConfig::parse(&text, std::path::Path::new("t.toml"))?;
        config.objective_section::<AlsSection>("als", "like")
    }
}
