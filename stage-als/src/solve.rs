//! One half-sweep of alternating least squares: every row of one side (users or videos)
//! solves its k x k normal equations against the other side's fixed factors.
//!
//! For row u with observed columns i, cells (g_i, h_i) (see `matrix::Cell`) and the
//! optional Gram matrix G of the fixed side (implicit mode, Hu/Koren/Volinsky eq. 4):
//!
//!   (G + sum_i g_i y_i y_i^T + lambda_u I) x_u = sum_i h_i y_i
//!
//! with lambda_u = lambda * n_u (count scaling) or lambda; n_u is the row's number of
//! observations (`Cell::observations`: its cells, or its rating rows when every row of a
//! repeated pair counts). The system is built in f64 on a packed symmetric matrix and
//! solved by nalgebra's Cholesky, or by a few warm-started conjugate-gradient steps that
//! never form the matrix. Rows run in parallel; each writes only its own factor, so the
//! result does not depend on the thread count.

use nalgebra::{Cholesky, DMatrix, DVector};
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use crate::avx2;
use crate::kernels::{self, packed_len};
use crate::matrix::{Cell, Csr};
use crate::params::{LambdaScaling, Solver};

/// Rows per partial sum of the Gram matrix: fixed, so the sum does not depend on threads.
const GRAM_CHUNK_ROWS: usize = 2048;

/// A Cholesky pivot whose square falls below this share of the matrix's diagonal entry
/// means the column is (numerically) a combination of the others: condition numbers
/// beyond ~1e12 are treated as singular instead of returning a meaningless huge factor.
const SINGULAR_PIVOT_RATIO: f64 = 1e-12;

/// Conjugate gradient stops once the squared residual norm falls below this.
const CG_RESIDUAL_FLOOR: f64 = 1e-20;

/// Smallest number of rows a rayon task takes: per-task scratch is set up once per task,
/// and a row can take well under a microsecond.
const ROWS_PER_TASK: usize = 16;

/// `Y^T Y` of the fixed side, packed (for the Cholesky build), full (for CG products) and,
/// when k % 4 == 0, as lower 4 x 4 blocks (for the AVX2 CG product).
#[derive(Debug, Clone)]
pub struct Gram {
    pub packed: Vec<f64>,
    pub full: Vec<f64>,
    pub blocks: Vec<f64>,
}

/// Gram matrix of an n x k row-major factor matrix, summed in f64 over fixed row chunks.
pub fn gram(fixed: &[f32], k: usize) -> Gram {
    let fma = kernels::fma_available();
    let partials: Vec<Vec<f64>> = fixed
        .par_chunks(GRAM_CHUNK_ROWS * k)
        .map(|rows| {
            let mut packed = vec![0.0; packed_len(k)];
            if fma {
                // SAFETY: the CPU supports AVX2 and FMA (checked by `fma_available`).
                unsafe { gram_chunk_fma(rows, k, &mut packed) }
            } else {
                gram_chunk::<false>(rows, k, &mut packed)
            }
            packed
        })
        .collect();
    let mut packed = vec![0.0; packed_len(k)];
    for partial in &partials {
        for (total, value) in packed.iter_mut().zip(partial) {
            *total += value;
        }
    }
    let mut full = vec![0.0; k * k];
    kernels::packed_to_full(&packed, k, &mut full);
    let blocks = if k % 4 == 0 {
        kernels::lower_blocks4(&full, k)
    } else {
        Vec::new()
    };
    Gram {
        packed,
        full,
        blocks,
    }
}

#[inline(always)]
fn gram_chunk<const FMA: bool>(rows: &[f32], k: usize, packed: &mut [f64]) {
    let mut block = vec![0.0f64; 4 * k];
    let mut groups = rows.chunks_exact(4 * k);
    for group in &mut groups {
        widen(group, &mut block);
        let v = [
            &block[..k],
            &block[k..2 * k],
            &block[2 * k..3 * k],
            &block[3 * k..],
        ];
        kernels::packed_rank4::<FMA>(packed, k, v, [1.0; 4]);
    }
    for row in groups.remainder().chunks_exact(k) {
        widen(row, &mut block[..k]);
        kernels::packed_rank1::<FMA>(packed, k, &block[..k], 1.0);
    }
}

/// Rows ahead of the current one whose cache lines the gather requests.
const PREFETCH_AHEAD: usize = 16;

/// Asks the CPU to bring a factor row into the caches (a hint; no effect on results).
#[inline(always)]
fn prefetch_row(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // 16 f32 per 64-byte cache line.
        for line in row.chunks(16) {
            // SAFETY: prefetching is a hint that never faults; SSE is baseline on x86-64.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr() as *const i8) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

#[inline(always)]
fn widen(source: &[f32], target: &mut [f64]) {
    for (t, &s) in target.iter_mut().zip(source) {
        *t = s as f64;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gram_chunk_fma(rows: &[f32], k: usize, packed: &mut [f64]) {
    gram_chunk::<true>(rows, k, packed)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn gram_chunk_fma(rows: &[f32], k: usize, packed: &mut [f64]) {
    gram_chunk::<false>(rows, k, packed)
}

/// What one half-sweep solves.
pub struct Sweep<'a, C> {
    /// Rows = the side being solved, columns = the fixed side.
    pub matrix: &'a Csr<C>,
    /// Fixed side's factors, row-major n_cols x k. They stay f32 (half the memory
    /// traffic of f64, and a 100k x 64 matrix fits in a 32 MiB cache); four rows at a time
    /// are widened to f64 into a contiguous block before any arithmetic.
    pub fixed: &'a [f32],
    /// Gram matrix of the fixed side (implicit mode), or none (explicit mode).
    pub gram: Option<&'a Gram>,
    pub k: usize,
    pub regularization: f64,
    pub lambda_scaling: LambdaScaling,
    pub solver: Solver,
    pub cg_steps: usize,
}

/// A row whose normal equations have no unique solution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SingularRow {
    pub row: usize,
    /// Observed cells of the row.
    pub n_obs: usize,
}

/// Per-task buffers, allocated once per rayon job and reused for every row it solves.
struct Scratch {
    packed: Vec<f64>,
    diagonal: Vec<f64>,
    matrix: Option<DMatrix<f64>>,
    rhs: DVector<f64>,
    block: Vec<f64>,
    x: Vec<f64>,
    residual: Vec<f64>,
    direction: Vec<f64>,
    product: Vec<f64>,
    /// Gathered observation rows of the CG solver, grown on demand up to one block.
    rows: Vec<f64>,
}

impl Scratch {
    fn new(k: usize) -> Scratch {
        Scratch {
            packed: vec![0.0; packed_len(k)],
            diagonal: vec![0.0; k],
            matrix: Some(DMatrix::zeros(k, k)),
            rhs: DVector::zeros(k),
            block: vec![0.0; 4 * k],
            x: vec![0.0; k],
            residual: vec![0.0; k],
            direction: vec![0.0; k],
            product: vec![0.0; k],
            rows: Vec::new(),
        }
    }
}

impl<C: Cell> Sweep<'_, C> {
    /// Solves every row with `present[row]` into `out` (row-major n_rows x k); other rows
    /// are set to zero. Returns the FLOPs spent (counted per row, see `apply_row_matrix`
    /// and `cholesky_row`); on singular systems, reports the lowest such row.
    pub fn run(&self, present: &[bool], out: &mut [f32]) -> Result<u64, SingularRow> {
        let k = self.k;
        let fma = kernels::fma_available();
        let (flops, first_failure) = out
            .par_chunks_mut(k)
            .enumerate()
            .with_min_len(ROWS_PER_TASK)
            .map_init(
                || Scratch::new(k),
                |scratch, (row, factor)| {
                    if !present[row] {
                        factor.fill(0.0);
                        return (0, None);
                    }
                    let solved = if fma {
                        // SAFETY: the CPU supports AVX2 and FMA (checked by `fma_available`).
                        unsafe { solve_row_fma(self, row, factor, scratch) }
                    } else {
                        solve_row::<C, false>(self, row, factor, scratch)
                    };
                    match solved {
                        Ok(flops) => (flops, None),
                        Err(failure) => (0, Some(failure)),
                    }
                },
            )
            .reduce(
                || (0, None),
                |(f1, e1), (f2, e2)| {
                    let first = match (e1, e2) {
                        (Some(a), Some(b)) => Some(if a.row <= b.row { a } else { b }),
                        (a, b) => a.or(b),
                    };
                    (f1 + f2, first)
                },
            );
        match first_failure {
            Some(failure) => Err(failure),
            None => Ok(flops),
        }
    }

    /// The row's ridge weight; `n_obs` is `Cell::observations` of its cells.
    fn lambda_for(&self, n_obs: usize) -> f64 {
        match self.lambda_scaling {
            LambdaScaling::Count => self.regularization * n_obs as f64,
            LambdaScaling::None => self.regularization,
        }
    }

    #[inline(always)]
    fn fixed_row(&self, col: u32) -> &[f32] {
        let start = col as usize * self.k;
        &self.fixed[start..start + self.k]
    }

    /// Widens the fixed rows of four columns into `block` (4 x k, f64).
    #[inline(always)]
    fn gather4<'b>(&self, cols: &[u32], block: &'b mut [f64]) -> [&'b [f64]; 4] {
        let k = self.k;
        for (t, &c) in cols[..4].iter().enumerate() {
            widen(self.fixed_row(c), &mut block[t * k..(t + 1) * k]);
        }
        let (first, rest) = block.split_at(k);
        let (second, rest) = rest.split_at(k);
        let (third, fourth) = rest.split_at(k);
        [first, second, third, &fourth[..k]]
    }

    /// Widens the fixed rows of `cols` into consecutive rows of `block`.
    ///
    /// The rows are scattered over a matrix larger than the core's caches, so each is
    /// prefetched `PREFETCH_AHEAD` rows before its turn: a cache miss per row otherwise
    /// took a third of the solver's time.
    #[inline(always)]
    fn gather(&self, cols: &[u32], block: &mut [f64]) {
        let k = self.k;
        for (j, (target, &c)) in block.chunks_exact_mut(k).zip(cols).enumerate() {
            if let Some(&ahead) = cols.get(j + PREFETCH_AHEAD) {
                prefetch_row(&self.fixed[ahead as usize * k..(ahead as usize + 1) * k]);
            }
            widen(self.fixed_row(c), target);
        }
    }

    /// Widens one fixed row into the start of `block`.
    #[inline(always)]
    fn gather1<'b>(&self, col: u32, block: &'b mut [f64]) -> &'b [f64] {
        widen(self.fixed_row(col), &mut block[..self.k]);
        &block[..self.k]
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn solve_row_fma<C: Cell>(
    sweep: &Sweep<C>,
    row: usize,
    factor: &mut [f32],
    scratch: &mut Scratch,
) -> Result<u64, SingularRow> {
    solve_row::<C, true>(sweep, row, factor, scratch)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn solve_row_fma<C: Cell>(
    sweep: &Sweep<C>,
    row: usize,
    factor: &mut [f32],
    scratch: &mut Scratch,
) -> Result<u64, SingularRow> {
    solve_row::<C, false>(sweep, row, factor, scratch)
}

#[inline(always)]
fn solve_row<C: Cell, const FMA: bool>(
    sweep: &Sweep<C>,
    row: usize,
    factor: &mut [f32],
    scratch: &mut Scratch,
) -> Result<u64, SingularRow> {
    match sweep.solver {
        Solver::Cholesky => cholesky_row::<C, FMA>(sweep, row, factor, scratch),
        Solver::Cg => Ok(cg_row::<C, FMA>(sweep, row, factor, scratch)),
    }
}

/// Fills `scratch.packed` with A = G + sum g_i y_i y_i^T + lambda_u I and `scratch.rhs`
/// with b = sum h_i y_i.
#[inline(always)]
fn build_row<C: Cell, const FMA: bool>(sweep: &Sweep<C>, row: usize, scratch: &mut Scratch) {
    let k = sweep.k;
    let (cols, cells) = sweep.matrix.row(row);
    let Scratch {
        packed: a,
        rhs,
        block,
        ..
    } = scratch;
    match sweep.gram {
        Some(gram) => a.copy_from_slice(&gram.packed),
        None => a.fill(0.0),
    }
    let b = rhs.as_mut_slice();
    b.fill(0.0);

    let mut col_groups = cols.chunks_exact(4);
    let mut cell_groups = cells.chunks_exact(4);
    for (c, w) in (&mut col_groups).zip(&mut cell_groups) {
        let y = sweep.gather4(c, block);
        let g = [
            w[0].gram_weight(),
            w[1].gram_weight(),
            w[2].gram_weight(),
            w[3].gram_weight(),
        ];
        let h = [
            w[0].rhs_weight(),
            w[1].rhs_weight(),
            w[2].rhs_weight(),
            w[3].rhs_weight(),
        ];
        kernels::packed_rank4::<FMA>(a, k, y, g);
        kernels::axpy4::<FMA>(h, y, b);
    }
    for (&c, &w) in col_groups.remainder().iter().zip(cell_groups.remainder()) {
        let y = sweep.gather1(c, block);
        kernels::packed_rank1::<FMA>(a, k, y, w.gram_weight());
        kernels::axpy::<FMA>(w.rhs_weight(), y, b);
    }
    kernels::packed_add_diagonal(a, k, sweep.lambda_for(C::observations(cells)));
}

#[inline(always)]
fn cholesky_row<C: Cell, const FMA: bool>(
    sweep: &Sweep<C>,
    row: usize,
    factor: &mut [f32],
    scratch: &mut Scratch,
) -> Result<u64, SingularRow> {
    let k = sweep.k;
    build_row::<C, FMA>(sweep, row, scratch);
    let singular = SingularRow {
        row,
        n_obs: sweep.matrix.indptr[row + 1] - sweep.matrix.indptr[row],
    };

    // nalgebra reads the lower triangle, column by column: exactly the packed layout.
    let mut matrix = scratch
        .matrix
        .take()
        .unwrap_or_else(|| DMatrix::zeros(k, k));
    {
        let storage = matrix.as_mut_slice();
        let mut offset = 0;
        for j in 0..k {
            let len = k - j;
            storage[j * k + j..j * k + k].copy_from_slice(&scratch.packed[offset..offset + len]);
            scratch.diagonal[j] = scratch.packed[offset];
            offset += len;
        }
    }
    let Some(cholesky) = Cholesky::new(matrix) else {
        return Err(singular);
    };
    let l = cholesky.l_dirty();
    let well_posed = (0..k).all(|j| {
        let pivot = l[(j, j)];
        pivot * pivot >= SINGULAR_PIVOT_RATIO * scratch.diagonal[j]
    });
    if !well_posed {
        scratch.matrix = Some(cholesky.unpack_dirty());
        return Err(singular);
    }
    cholesky.solve_mut(&mut scratch.rhs);
    scratch.matrix = Some(cholesky.unpack_dirty());
    for (out, value) in factor.iter_mut().zip(scratch.rhs.iter()) {
        *out = *value as f32;
    }
    Ok(cholesky_flops(k, singular.n_obs))
}

/// FLOPs of one Cholesky row: the build (a packed rank-1 update and an axpy per
/// observation), the factorisation (k^3 / 3) and the two triangular solves (2 k^2).
pub fn cholesky_flops(k: usize, n_obs: usize) -> u64 {
    let k = k as u64;
    n_obs as u64 * (kernels::rank1_flops(k as usize) + 2 * k) + k * k * k / 3 + 2 * k * k
}

/// Widened f64 observation rows one CG block holds: 64 MiB per thread, 131,072
/// observations at k = 64. A row of that size is read four times per solve either way;
/// reading it back in order, even from memory, beat gathering its scattered f32 rows
/// again in every pass (half the observations of the 5M-row benchmark log sit in video
/// rows longer than a 256 KiB block).
const GATHER_BYTES: usize = 64 * 1024 * 1024;

/// Observations per gathered block for k factors: a multiple of 4, so that the groups of
/// four that the kernels take are the same whether a row is gathered whole or in blocks.
fn gather_block_rows(k: usize) -> usize {
    (GATHER_BYTES / (8 * k)).max(4) / 4 * 4
}

/// The observed rows of one CG solve, widened to f64 in a per-task buffer. A row with at
/// most `gather_block_rows(k)` observations is gathered once and reused by all its passes
/// (the residual and every step), which saves the f32 -> f64 conversions and cache misses
/// of re-reading scattered rows; a longer row is gathered block by block in every pass.
struct Gathered<'s> {
    buffer: &'s mut Vec<f64>,
    block_rows: usize,
    resident: bool,
}

/// `out = c A v + d b` without forming A (c, d in {-1, 0, 1}): the Gram product, then
/// four observations at a time `sum_i (d h_i + c g_i (y_i · v)) y_i`, then `c lambda v`.
/// With c = -1, d = 1 this is the residual b - A v in a single pass over the observations.
/// Returns the pass's FLOPs (2 k^2 for the Gram product, 4 k per observation, 2 k for the
/// ridge term; the few scalar operations per observation are not counted).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn apply_row_matrix<C: Cell, const FMA: bool>(
    sweep: &Sweep<C>,
    cols: &[u32],
    cells: &[C],
    lambda: f64,
    [c, d]: [f64; 2],
    v: &[f64],
    gathered: &mut Gathered,
    out: &mut [f64],
) -> u64 {
    let k = sweep.k;
    let mut flops = (4 * k * cols.len() + 2 * k) as u64;
    match sweep.gram {
        Some(gram) => {
            if use_avx2::<FMA>(k) {
                // SAFETY: FMA = true only runs on CPUs with AVX2 and FMA; k % 4 == 0.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    avx2::symv_blocks(&gram.blocks, k, v, out)
                };
            } else {
                kernels::symv_full::<FMA>(&gram.full, k, v, out);
            }
            if c != 1.0 {
                out.iter_mut().for_each(|o| *o *= c);
            }
            flops += 2 * (k * k) as u64;
        }
        None => out.fill(0.0),
    }
    let block_rows = gathered.block_rows;
    for (block_cols, block_cells) in cols.chunks(block_rows).zip(cells.chunks(block_rows)) {
        if !gathered.resident {
            sweep.gather(block_cols, gathered.buffer);
        }
        let rows = &gathered.buffer[..block_cols.len() * k];
        accumulate_block::<C, FMA>(rows, k, block_cells, [c, d], v, out);
    }
    kernels::axpy::<FMA>(c * lambda, v, out);
    flops
}

/// True when the explicit AVX2 kernels apply: inside the FMA copy of the solver, on
/// x86-64, with k a multiple of 4.
#[inline(always)]
fn use_avx2<const FMA: bool>(k: usize) -> bool {
    FMA && cfg!(target_arch = "x86_64") && k % 4 == 0
}

/// Observations per step of `accumulate_block`: their widened rows (16 KiB at k = 64)
/// are still in L1 when the second half of the step reads them again. A multiple of 4.
const STEP_ROWS: usize = 32;

/// `out += sum_i (d h_i + c g_i (y_i · v)) y_i` over contiguous widened rows y_i.
///
/// In steps of `STEP_ROWS` observations: every coefficient of the step first, then their
/// weighted sum of rows, which the AVX2 kernel accumulates with `out` held in registers.
/// (Updating `out` in memory after each group of four observations chained every group
/// to the previous one's stores, and the FMA units waited on that chain.)
#[inline(always)]
fn accumulate_block<C: Cell, const FMA: bool>(
    rows: &[f64],
    k: usize,
    cells: &[C],
    [c, d]: [f64; 2],
    v: &[f64],
    out: &mut [f64],
) {
    let mut coefficients = [0.0f64; STEP_ROWS];
    for (step_rows, step_cells) in rows.chunks(STEP_ROWS * k).zip(cells.chunks(STEP_ROWS)) {
        let coefficients = &mut coefficients[..step_cells.len()];
        let slots = coefficients.chunks_exact_mut(4);
        for ((group, w), slots) in step_rows
            .chunks_exact(4 * k)
            .zip(step_cells.chunks_exact(4))
            .zip(slots)
        {
            let (y0, rest) = group.split_at(k);
            let (y1, rest) = rest.split_at(k);
            let (y2, y3) = rest.split_at(k);
            let y = [y0, y1, y2, y3];
            let four = if use_avx2::<FMA>(k) {
                // SAFETY: FMA = true only runs on CPUs with AVX2 and FMA; k % 4 == 0.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    avx2::dot4(y, k, v)
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!()
            } else {
                kernels::dot4::<FMA>(y, v)
            };
            for t in 0..4 {
                slots[t] = d * w[t].rhs_weight() + c * w[t].gram_weight() * four[t];
            }
        }
        let tail = step_cells.len() / 4 * 4;
        for (i, w) in step_cells.iter().enumerate().skip(tail) {
            let dot = kernels::dot::<FMA>(&step_rows[i * k..(i + 1) * k], v);
            coefficients[i] = d * w.rhs_weight() + c * w.gram_weight() * dot;
        }

        if use_avx2::<FMA>(k) {
            // SAFETY: as above; `step_rows` holds `coefficients.len()` rows of k.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                avx2::add_weighted_rows(step_rows, k, coefficients, out)
            };
        } else {
            for (y, &coefficient) in step_rows.chunks_exact(k).zip(coefficients.iter()) {
                kernels::axpy::<FMA>(coefficient, y, out);
            }
        }
    }
}

/// Conjugate gradient on A x = b from the row's current factor (Takacs et al. 2011 use the
/// same warm start for implicit ALS): a few steps per sweep converge across sweeps.
/// Returns the FLOPs spent (the passes' counts plus 10 k per step for the vector updates).
#[inline(always)]
fn cg_row<C: Cell, const FMA: bool>(
    sweep: &Sweep<C>,
    row: usize,
    factor: &mut [f32],
    scratch: &mut Scratch,
) -> u64 {
    let k = sweep.k;
    let (cols, cells) = sweep.matrix.row(row);
    let lambda = sweep.lambda_for(C::observations(cells));
    let Scratch {
        x,
        residual,
        direction,
        product,
        rows,
        ..
    } = scratch;
    widen(factor, x);

    // Gather a short row once for all its passes.
    let block_rows = gather_block_rows(k);
    let resident = cols.len() <= block_rows;
    let needed = cols.len().min(block_rows) * k;
    if rows.len() < needed {
        rows.resize(needed, 0.0);
    }
    if resident {
        sweep.gather(cols, rows);
    }
    let mut gathered = Gathered {
        buffer: rows,
        block_rows,
        resident,
    };

    let mut flops = apply_row_matrix::<C, FMA>(
        sweep,
        cols,
        cells,
        lambda,
        [-1.0, 1.0],
        x,
        &mut gathered,
        residual,
    );
    direction.copy_from_slice(residual);
    let mut rs_old = kernels::dot::<FMA>(residual, residual);

    for _ in 0..sweep.cg_steps {
        if rs_old < CG_RESIDUAL_FLOOR {
            break;
        }
        flops += apply_row_matrix::<C, FMA>(
            sweep,
            cols,
            cells,
            lambda,
            [1.0, 0.0],
            direction,
            &mut gathered,
            product,
        );
        flops += 10 * k as u64;
        let curvature = kernels::dot::<FMA>(direction, product);
        // A non-positive (or NaN) curvature means the direction is numerically null.
        if curvature.is_nan() || curvature <= 0.0 {
            break;
        }
        let step = rs_old / curvature;
        kernels::axpy::<FMA>(step, direction, x);
        kernels::axpy::<FMA>(-step, product, residual);
        let rs_new = kernels::dot::<FMA>(residual, residual);
        let beta = rs_new / rs_old;
        for (d, &r) in direction.iter_mut().zip(residual.iter()) {
            *d = r + beta * *d;
        }
        rs_old = rs_new;
    }
    for (out, &value) in factor.iter_mut().zip(x.iter()) {
        *out = value as f32;
    }
    flops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{Implicit, RatingsCsr};

    fn sweep<'a, C: Cell>(
        matrix: &'a Csr<C>,
        fixed: &'a [f32],
        gram: Option<&'a Gram>,
        k: usize,
        solver: Solver,
    ) -> Sweep<'a, C> {
        Sweep {
            matrix,
            fixed,
            gram,
            k,
            regularization: 0.5,
            lambda_scaling: LambdaScaling::None,
            solver,
            cg_steps: k,
        }
    }

    fn widened(values: &[f32]) -> Vec<f64> {
        values.iter().map(|&v| v as f64).collect()
    }

    /// Dense reference: builds A and b naively and solves with nalgebra's LU.
    fn dense_solution(
        rows: &[(Vec<f64>, f64, f64)],
        gram: Option<&[f64]>,
        k: usize,
        lambda: f64,
    ) -> Vec<f64> {
        let mut a = DMatrix::<f64>::zeros(k, k);
        let mut b = DVector::<f64>::zeros(k);
        if let Some(g) = gram {
            for r in 0..k {
                for c in 0..k {
                    a[(r, c)] += g[r * k + c];
                }
            }
        }
        for (y, g, h) in rows {
            for r in 0..k {
                b[r] += h * y[r];
                for c in 0..k {
                    a[(r, c)] += g * y[r] * y[c];
                }
            }
        }
        for j in 0..k {
            a[(j, j)] += lambda;
        }
        a.lu().solve(&b).unwrap().iter().copied().collect()
    }

    #[test]
    fn cholesky_and_cg_rows_match_a_dense_solve() {
        let k = 6;
        let n_cols = 9;
        let fixed: Vec<f32> = (0..n_cols * k)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 10.0)
            .collect();
        let cols: Vec<u32> = vec![0, 2, 3, 5, 7, 8];
        let ratings: Vec<f32> = vec![4.0, 2.0, 5.0, 1.0, 3.0, 4.0];
        let matrix = RatingsCsr::from_triples(1, n_cols, &[0; 6], &cols, &ratings).unwrap();
        let rows: Vec<(Vec<f64>, f64, f64)> = cols
            .iter()
            .zip(&ratings)
            .map(|(&c, &r)| {
                (
                    widened(&fixed[c as usize * k..(c as usize + 1) * k]),
                    1.0,
                    r as f64,
                )
            })
            .collect();
        let expected = dense_solution(&rows, None, k, 0.5);
        for solver in [Solver::Cholesky, Solver::Cg] {
            let mut out = vec![0.0f32; k];
            sweep(&matrix, &fixed, None, k, solver)
                .run(&[true], &mut out)
                .unwrap();
            for (got, want) in out.iter().zip(&expected) {
                assert!(
                    (*got as f64 - want).abs() < 1e-5,
                    "{solver:?}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn implicit_rows_use_the_gram_matrix_of_all_columns() {
        let k = 3;
        let fixed: Vec<f32> = vec![1.0, 0.0, 0.5, 0.0, 1.0, -0.5, 0.3, 0.3, 1.0, 2.0, -1.0, 0.0];
        let g = gram(&fixed, k);
        let cell = Implicit {
            preference: 1.0,
            confidence: 5.0,
        };
        let matrix = Csr::from_triples(1, 4, &[0, 0], &[1, 3], &[cell, cell]).unwrap();
        let rows: Vec<(Vec<f64>, f64, f64)> = [1usize, 3]
            .iter()
            .map(|&c| (widened(&fixed[c * k..(c + 1) * k]), 4.0, 5.0))
            .collect();
        let expected = dense_solution(&rows, Some(&g.full), k, 0.5);
        for solver in [Solver::Cholesky, Solver::Cg] {
            let mut out = vec![0.0f32; k];
            sweep(&matrix, &fixed, Some(&g), k, solver)
                .run(&[true], &mut out)
                .unwrap();
            for (got, want) in out.iter().zip(&expected) {
                assert!(
                    (*got as f64 - want).abs() < 1e-5,
                    "{solver:?}: {got} vs {want}"
                );
            }
        }
    }

    /// A row with more observations than one gather block is gathered block by block in
    /// every pass; the result must still be the exact solution (CG with k steps).
    #[test]
    fn cg_on_a_row_longer_than_one_gather_block_matches_a_dense_solve() {
        let k = 4;
        let n_obs = gather_block_rows(k) + 37;
        let fixed: Vec<f32> = (0..n_obs * k)
            .map(|i| ((i * 7919 % 211) as f32 - 105.0) / 100.0)
            .collect();
        let cols: Vec<u32> = (0..n_obs as u32).collect();
        let cell = Implicit {
            preference: 1.0,
            confidence: 3.0,
        };
        let matrix =
            Csr::from_triples(1, n_obs, &vec![0; n_obs], &cols, &vec![cell; n_obs]).unwrap();
        let g = gram(&fixed, k);
        let rows: Vec<(Vec<f64>, f64, f64)> = (0..n_obs)
            .map(|c| (widened(&fixed[c * k..(c + 1) * k]), 2.0, 3.0))
            .collect();
        let expected = dense_solution(&rows, Some(&g.full), k, 0.5);
        let mut out = vec![0.0f32; k];
        sweep(&matrix, &fixed, Some(&g), k, Solver::Cg)
            .run(&[true], &mut out)
            .unwrap();
        for (got, want) in out.iter().zip(&expected) {
            assert!(
                (*got as f64 - want).abs() < 1e-5 * want.abs().max(1.0),
                "{got} vs {want}"
            );
        }
    }

    #[test]
    fn gram_matches_sum_of_outer_products() {
        let k = 5;
        let n = 4099;
        let fixed: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let g = gram(&fixed, k);
        for r in 0..k {
            for c in 0..k {
                let want: f64 = (0..n)
                    .map(|i| fixed[i * k + r] as f64 * fixed[i * k + c] as f64)
                    .sum();
                assert!((g.full[r * k + c] - want).abs() < 1e-9 * want.abs().max(1.0));
            }
        }
    }

    #[test]
    fn rank_deficient_system_is_reported_as_singular_with_its_row() {
        let k = 3;
        let fixed = vec![1.0, 2.0, 0.0, 2.0, 4.0, 0.0];
        let matrix = RatingsCsr::from_triples(2, 2, &[1, 1], &[0, 1], &[1.0, 2.0]).unwrap();
        let mut s = sweep(&matrix, &fixed, None, k, Solver::Cholesky);
        s.regularization = 0.0;
        let mut out = vec![0.0f32; 2 * k];
        assert_eq!(
            s.run(&[false, true], &mut out),
            Err(SingularRow { row: 1, n_obs: 2 })
        );
    }

    #[test]
    fn absent_rows_are_zeroed_and_not_solved() {
        let matrix = RatingsCsr::from_triples(2, 1, &[0], &[0], &[3.0]).unwrap();
        let mut out = vec![9.0f32; 2];
        sweep(&matrix, &[1.0], None, 1, Solver::Cholesky)
            .run(&[true, false], &mut out)
            .unwrap();
        assert_eq!(out, vec![2.0, 0.0]);
    }
}
