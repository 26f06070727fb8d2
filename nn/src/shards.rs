//! Data-parallel gradient steps: a batch is cut into a fixed number of shards whose forward
//! and backward passes run on the rayon pool, and their gradients are summed in shard order.
//! The shard count is a setting, never the thread count, so a step gives the same bits on
//! one thread or many.

use std::ops::Range;

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::Var;

/// `n` items cut into `shards` contiguous ranges whose sizes differ by at most one (empty
/// ranges are left out when `n < shards`).
pub fn ranges(n: usize, shards: usize) -> Vec<Range<usize>> {
    let shards = shards.max(1);
    let (base, extra) = (n / shards, n % shards);
    let mut start = 0;
    let mut out = Vec::with_capacity(shards);
    for shard in 0..shards {
        let len = base + (shard < extra) as usize;
        if len > 0 {
            out.push(start..start + len);
        }
        start += len;
    }
    out
}

/// Sums the gradients of `vars` over the shards' stores, added in shard order, into the
/// first store (pass that one to the optimiser); every other entry is left as it was, so
/// each shard's store still holds its own sparse gradients.
pub fn sum_dense_into_first(stores: &mut [GradStore], vars: &[Var]) -> Result<()> {
    let Some((first, rest)) = stores.split_first_mut() else {
        anyhow::bail!("no shard to sum");
    };
    if rest.is_empty() {
        return Ok(());
    }
    for var in vars {
        let mut sum = first.get(var.as_tensor()).cloned();
        for store in rest.iter() {
            if let Some(grad) = store.get(var.as_tensor()) {
                sum = Some(match sum {
                    Some(acc) => acc.add(grad)?,
                    None => grad.clone(),
                });
            }
        }
        if let Some(sum) = sum {
            first.insert(var.as_tensor(), sum);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn ranges_cover_everything_in_near_equal_parts() {
        assert_eq!(ranges(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(ranges(2, 4), vec![0..1, 1..2]);
        assert_eq!(ranges(5, 1), vec![0..5]);
        assert!(ranges(0, 2).is_empty());
    }

    #[test]
    fn dense_gradients_add_up_over_shards() {
        let var = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let loss = |scale: f64| {
            var.as_tensor()
                .sqr()
                .unwrap()
                .affine(scale, 0.0)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        };
        let mut stores = vec![loss(1.0), loss(2.0)];
        sum_dense_into_first(&mut stores, &[var.clone()]).unwrap();
        let grad = stores[0].get(var.as_tensor()).unwrap();
        // d/dx of x² + 2x² is 6x.
        assert_eq!(grad.to_vec1::<f32>().unwrap(), vec![6.0, -12.0]);
    }
}
