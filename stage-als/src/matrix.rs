//! Sparse observation matrices in compressed-row form, built from (row, column, cell) lists.
//!
//! Duplicate (row, column) entries are merged into one stored cell before fitting. What the
//! cell keeps is the cell type's rule: an `f32` rating keeps the mean of its values (one
//! observation per pair), a `RatingRows` cell keeps their sum and count (every row is an
//! observation, as Spark MLlib counts them), an implicit cell sums the extra confidence of
//! its rows (see `Implicit`). Rows keep their columns in increasing order, so every loop
//! over a row is deterministic.

use std::fmt;

/// One observed cell's contribution to the normal equations of its row:
/// `A += gram_weight * y y^T` and `b += rhs_weight * y`.
pub trait Cell: Copy + Send + Sync + fmt::Debug + 'static {
    /// Weight of the cell in the Gram part of the normal equations.
    fn gram_weight(self) -> f64;
    /// Weight of the cell's factor in the right-hand side.
    fn rhs_weight(self) -> f64;
    /// True when the cell gives its row a reason to have a factor.
    fn is_positive(self) -> bool;
    /// Merges the cells of one (row, column) pair, given in input order.
    fn merge(cells: &[Self]) -> Self;
    /// Observations that the cells of one row stand for: the n of count-scaled lambda
    /// (`lambda * n`). One per cell unless a cell type counts the rows it merged.
    fn observations(cells: &[Self]) -> usize {
        cells.len()
    }
}

/// A cell of explicit ratings (squared loss on observed cells only); `fit::fit_explicit`
/// takes a matrix of any such cell.
pub trait ExplicitCell: Cell {
    /// The cell's regression target (the mean of its rows' ratings).
    fn target(self) -> f64;
    /// Rows the cell stands for: its weight in the training RMSE.
    fn row_count(self) -> usize;
}

/// An explicit rating: the regression target `r` of the squared loss `(r - x·y)^2`.
impl Cell for f32 {
    fn gram_weight(self) -> f64 {
        1.0
    }

    fn rhs_weight(self) -> f64 {
        self as f64
    }

    fn is_positive(self) -> bool {
        true
    }

    /// Repeated ratings of one pair count as one observation of their mean, so a user who
    /// rated a video twice does not pull it twice as hard.
    fn merge(cells: &[f32]) -> f32 {
        let sum: f64 = cells.iter().map(|&v| v as f64).sum();
        (sum / cells.len() as f64) as f32
    }
}

impl ExplicitCell for f32 {
    fn target(self) -> f64 {
        self as f64
    }

    fn row_count(self) -> usize {
        1
    }
}

/// The explicit rating rows of one (user, video) pair when every row counts, as Spark
/// MLlib's ALS adds them: `sum` of the ratings and their number `n_rows`. The rows' loss
/// `sum_r (r - x·y)^2 = n (mean - x·y)^2 + const` makes the cell weigh `n` in the Gram part
/// and `n * mean = sum` in the right-hand side, and count-scaled lambda counts `n`.
/// 8 bytes, so the matrix grows by a third over `f32` cells (4 of 12 bytes per cell).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatingRows {
    pub sum: f32,
    pub n_rows: u32,
}

impl RatingRows {
    /// One rating row.
    pub fn one(rating: f32) -> RatingRows {
        RatingRows {
            sum: rating,
            n_rows: 1,
        }
    }
}

impl Cell for RatingRows {
    fn gram_weight(self) -> f64 {
        self.n_rows as f64
    }

    fn rhs_weight(self) -> f64 {
        self.sum as f64
    }

    fn is_positive(self) -> bool {
        true
    }

    /// Sums (in f64, rounded once to f32) and counts the rows, so the pair weighs as much
    /// as all its rows.
    fn merge(cells: &[RatingRows]) -> RatingRows {
        let sum: f64 = cells.iter().map(|c| c.sum as f64).sum();
        RatingRows {
            sum: sum as f32,
            n_rows: cells.iter().map(|c| c.n_rows).sum(),
        }
    }

    fn observations(cells: &[RatingRows]) -> usize {
        cells.iter().map(|c| c.n_rows as usize).sum()
    }
}

impl ExplicitCell for RatingRows {
    fn target(self) -> f64 {
        self.sum as f64 / self.n_rows as f64
    }

    fn row_count(self) -> usize {
        self.n_rows as usize
    }
}

/// An implicit-feedback cell (Hu, Koren and Volinsky 2008): preference `p` in [0, 1]
/// observed with confidence `c >= 1`; its loss is `c (p - x·y)^2`. Unobserved cells have
/// `p = 0, c = 1` and are not stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Implicit {
    pub preference: f32,
    pub confidence: f32,
}

impl Cell for Implicit {
    /// `Y^T C_u Y = Y^T Y + Y^T (C_u - I) Y`: an observed cell adds `c - 1` on top of the
    /// Gram matrix of all videos.
    fn gram_weight(self) -> f64 {
        self.confidence as f64 - 1.0
    }

    fn rhs_weight(self) -> f64 {
        self.confidence as f64 * self.preference as f64
    }

    fn is_positive(self) -> bool {
        self.preference > 0.0
    }

    /// Confidence above the baseline of 1 adds up over repeated rows (two views weigh
    /// twice one view); the preference is the mean of the rows' preferences weighted by
    /// that extra confidence, which is 1 or 0 when all rows agree.
    fn merge(cells: &[Implicit]) -> Implicit {
        let extra: f64 = cells.iter().map(|c| c.confidence as f64 - 1.0).sum();
        let preference = if extra > 0.0 {
            cells
                .iter()
                .map(|c| (c.confidence as f64 - 1.0) * c.preference as f64)
                .sum::<f64>()
                / extra
        } else {
            cells.iter().map(|c| c.preference as f64).sum::<f64>() / cells.len() as f64
        };
        Implicit {
            preference: preference as f32,
            confidence: (1.0 + extra) as f32,
        }
    }
}

/// A sparse matrix in compressed-row form: row `r` holds columns
/// `indices[indptr[r]..indptr[r + 1]]` (increasing) with their cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr<C> {
    pub n_rows: usize,
    pub n_cols: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub cells: Vec<C>,
}

/// Explicit ratings, repeated rows of a pair merged to their mean, rows = users, columns =
/// videos (or the transpose).
pub type RatingsCsr = Csr<f32>;

/// Explicit ratings, every rating row counted, rows = users, columns = videos (or the
/// transpose).
pub type RatingRowsCsr = Csr<RatingRows>;

/// Implicit feedback, rows = users, columns = videos (or the transpose).
pub type ImplicitCsr = Csr<Implicit>;

/// A row or column index outside the matrix's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexOutOfRange {
    /// Position in the input lists.
    pub position: usize,
    pub axis: &'static str,
    pub index: u32,
    pub bound: usize,
}

impl fmt::Display for IndexOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entry {}: {} index {} is outside 0..{}",
            self.position, self.axis, self.index, self.bound
        )
    }
}

impl std::error::Error for IndexOutOfRange {}

impl<C: Cell> Csr<C> {
    /// Builds the matrix from parallel lists, merging duplicate pairs with `Cell::merge`.
    pub fn from_triples(
        n_rows: usize,
        n_cols: usize,
        rows: &[u32],
        cols: &[u32],
        cells: &[C],
    ) -> Result<Csr<C>, IndexOutOfRange> {
        assert!(
            rows.len() == cols.len() && rows.len() == cells.len(),
            "parallel lists"
        );
        for (position, (&row, &col)) in rows.iter().zip(cols).enumerate() {
            if row as usize >= n_rows {
                return Err(IndexOutOfRange {
                    position,
                    axis: "row",
                    index: row,
                    bound: n_rows,
                });
            }
            if col as usize >= n_cols {
                return Err(IndexOutOfRange {
                    position,
                    axis: "column",
                    index: col,
                    bound: n_cols,
                });
            }
        }

        // Counting sort by row keeps input order inside a row; the stable sort by column
        // then leaves duplicates in input order, so merging is deterministic.
        let mut starts = vec![0usize; n_rows + 1];
        for &row in rows {
            starts[row as usize + 1] += 1;
        }
        for r in 0..n_rows {
            starts[r + 1] += starts[r];
        }
        let mut order = vec![0usize; rows.len()];
        let mut next = starts.clone();
        for (position, &row) in rows.iter().enumerate() {
            order[next[row as usize]] = position;
            next[row as usize] += 1;
        }

        let mut indptr = Vec::with_capacity(n_rows + 1);
        let mut indices = Vec::with_capacity(rows.len());
        let mut merged = Vec::with_capacity(rows.len());
        let mut group: Vec<C> = Vec::new();
        indptr.push(0);
        for r in 0..n_rows {
            let slice = &mut order[starts[r]..starts[r + 1]];
            slice.sort_by_key(|&position| cols[position]);
            let mut i = 0;
            while i < slice.len() {
                let col = cols[slice[i]];
                group.clear();
                while i < slice.len() && cols[slice[i]] == col {
                    group.push(cells[slice[i]]);
                    i += 1;
                }
                indices.push(col);
                merged.push(if group.len() == 1 {
                    group[0]
                } else {
                    C::merge(&group)
                });
            }
            indptr.push(indices.len());
        }
        Ok(Csr {
            n_rows,
            n_cols,
            indptr,
            indices,
            cells: merged,
        })
    }

    /// Number of stored cells.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Columns and cells of row `r`.
    pub fn row(&self, r: usize) -> (&[u32], &[C]) {
        let range = self.indptr[r]..self.indptr[r + 1];
        (&self.indices[range.clone()], &self.cells[range])
    }

    /// The same cells with rows and columns swapped (for example video x user from
    /// user x video); rows of the result come out sorted because rows are visited in order.
    pub fn transpose(&self) -> Csr<C> {
        let mut counts = vec![0usize; self.n_cols + 1];
        for &col in &self.indices {
            counts[col as usize + 1] += 1;
        }
        for c in 0..self.n_cols {
            counts[c + 1] += counts[c];
        }
        let indptr = counts.clone();
        let mut next = counts;
        let mut indices = vec![0u32; self.nnz()];
        let mut cells = self.cells.clone();
        for r in 0..self.n_rows {
            let (cols, row_cells) = self.row(r);
            for (&col, &cell) in cols.iter().zip(row_cells) {
                let slot = next[col as usize];
                indices[slot] = r as u32;
                cells[slot] = cell;
                next[col as usize] += 1;
            }
        }
        Csr {
            n_rows: self.n_cols,
            n_cols: self.n_rows,
            indptr,
            indices,
            cells,
        }
    }

    /// True for every row with at least one positive cell: the rows that get a factor.
    pub fn positive_rows(&self) -> Vec<bool> {
        (0..self.n_rows)
            .map(|r| self.row(r).1.iter().any(|c| c.is_positive()))
            .collect()
    }

    /// The matrix without the cells whose row or column is not kept.
    pub fn retain(&self, keep_rows: &[bool], keep_cols: &[bool]) -> Csr<C> {
        let mut indptr = Vec::with_capacity(self.n_rows + 1);
        let mut indices = Vec::with_capacity(self.nnz());
        let mut cells = Vec::with_capacity(self.nnz());
        indptr.push(0);
        for (r, &keep) in keep_rows.iter().enumerate().take(self.n_rows) {
            if keep {
                let (cols, row_cells) = self.row(r);
                for (&col, &cell) in cols.iter().zip(row_cells) {
                    if keep_cols[col as usize] {
                        indices.push(col);
                        cells.push(cell);
                    }
                }
            }
            indptr.push(indices.len());
        }
        Csr {
            n_rows: self.n_rows,
            n_cols: self.n_cols,
            indptr,
            indices,
            cells,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_explicit_pairs_merge_to_their_mean() {
        let m = RatingsCsr::from_triples(2, 3, &[1, 0, 1, 1], &[2, 1, 0, 2], &[4.0, 3.0, 1.0, 2.0])
            .unwrap();
        assert_eq!(m.indptr, vec![0, 1, 3]);
        assert_eq!(m.indices, vec![1, 0, 2]);
        assert_eq!(m.cells, vec![3.0, 1.0, 3.0]);
    }

    #[test]
    fn duplicate_rating_rows_keep_their_sum_and_count() {
        let cells = [4.0, 3.0, 1.0, 2.0].map(RatingRows::one);
        let m = RatingRowsCsr::from_triples(2, 3, &[1, 0, 1, 1], &[2, 1, 0, 2], &cells).unwrap();
        assert_eq!(m.indices, vec![1, 0, 2]);
        assert_eq!(
            m.cells,
            vec![
                RatingRows::one(3.0),
                RatingRows::one(1.0),
                RatingRows {
                    sum: 6.0,
                    n_rows: 2
                }
            ]
        );
        assert_eq!(RatingRows::observations(m.row(1).1), 3);
        assert_eq!(f32::observations(&[1.0, 2.0]), 2);
        // The pair rated 4 and 2 weighs 2 with target 3: n (mean - s)^2 up to a constant.
        let cell = m.cells[2];
        assert_eq!((cell.gram_weight(), cell.rhs_weight()), (2.0, 6.0));
        assert_eq!((cell.target(), cell.row_count()), (3.0, 2));
    }

    #[test]
    fn duplicate_implicit_pairs_sum_extra_confidence() {
        let pos = Implicit {
            preference: 1.0,
            confidence: 11.0,
        };
        let neg = Implicit {
            preference: 0.0,
            confidence: 11.0,
        };
        let m = ImplicitCsr::from_triples(1, 2, &[0, 0, 0], &[0, 0, 1], &[pos, pos, neg]).unwrap();
        assert_eq!(
            m.cells[0],
            Implicit {
                preference: 1.0,
                confidence: 21.0
            }
        );
        assert_eq!(m.cells[1], neg);
        let mixed = Implicit::merge(&[pos, neg]);
        assert_eq!(
            mixed,
            Implicit {
                preference: 0.5,
                confidence: 21.0
            }
        );
    }

    #[test]
    fn transpose_swaps_axes_and_keeps_rows_sorted() {
        let m = RatingsCsr::from_triples(3, 2, &[2, 0, 1, 0], &[0, 1, 0, 0], &[1.0, 2.0, 3.0, 4.0])
            .unwrap();
        let t = m.transpose();
        assert_eq!((t.n_rows, t.n_cols), (2, 3));
        assert_eq!(t.row(0), (&[0u32, 1, 2][..], &[4.0f32, 3.0, 1.0][..]));
        assert_eq!(t.row(1), (&[0u32][..], &[2.0f32][..]));
        assert_eq!(t.transpose(), m);
    }

    #[test]
    fn out_of_range_index_is_reported_with_its_position() {
        let err = RatingsCsr::from_triples(2, 2, &[0, 1], &[1, 2], &[1.0, 1.0]).unwrap_err();
        assert_eq!(
            err,
            IndexOutOfRange {
                position: 1,
                axis: "column",
                index: 2,
                bound: 2
            }
        );
    }

    #[test]
    fn retain_drops_cells_of_removed_rows_and_columns() {
        let m = RatingsCsr::from_triples(2, 2, &[0, 0, 1], &[0, 1, 1], &[1.0, 2.0, 3.0]).unwrap();
        let kept = m.retain(&[true, false], &[false, true]);
        assert_eq!(kept.indptr, vec![0, 1, 1]);
        assert_eq!(kept.cells, vec![2.0]);
    }
}
