//! Ridge least squares on standardized columns: the cheap yardstick input selection
//! scores a combination of dependency metrics with (training an MLP per Thompson round
//! would cost hundreds of networks per assignment).
//!
//! In: rows, a target, which columns to use. Out: held-out mean absolute error. State: none.

/// Mean absolute error on the last quarter of the rows of a ridge fit on the first three
/// quarters, using only `columns` of `x` (plus an intercept).
pub fn holdout_mae(x: &[Vec<f32>], y: &[f32], columns: &[usize], lambda: f64) -> f64 {
    let n = x.len();
    if n < 4 {
        return f64::INFINITY;
    }
    let split = n * 3 / 4;
    let d = columns.len() + 1;
    // Standardize the chosen columns on the training part.
    let mut mean = vec![0.0f64; columns.len()];
    let mut std = vec![0.0f64; columns.len()];
    for (k, &c) in columns.iter().enumerate() {
        let vals = x[..split]
            .iter()
            .map(|r| r.get(c).copied().unwrap_or(0.0) as f64);
        let m = vals.clone().sum::<f64>() / split as f64;
        let v = vals.map(|v| (v - m) * (v - m)).sum::<f64>() / split as f64;
        mean[k] = m;
        std[k] = v.sqrt().max(1e-6);
    }
    let row = |r: &Vec<f32>| -> Vec<f64> {
        let mut out = Vec::with_capacity(d);
        out.push(1.0);
        for (k, &c) in columns.iter().enumerate() {
            out.push((r.get(c).copied().unwrap_or(0.0) as f64 - mean[k]) / std[k]);
        }
        out
    };
    // Normal equations (XᵀX + λI) w = Xᵀy.
    let mut a = vec![vec![0.0f64; d]; d];
    let mut b = vec![0.0f64; d];
    for (r, t) in x[..split].iter().zip(&y[..split]) {
        let f = row(r);
        for i in 0..d {
            b[i] += f[i] * *t as f64;
            for j in 0..d {
                a[i][j] += f[i] * f[j];
            }
        }
    }
    for (i, ai) in a.iter_mut().enumerate().skip(1) {
        ai[i] += lambda;
    }
    let Some(w) = solve(a, b) else {
        return f64::INFINITY;
    };
    let test = &x[split..];
    test.iter()
        .zip(&y[split..])
        .map(|(r, t)| {
            let p: f64 = row(r).iter().zip(&w).map(|(a, b)| a * b).sum();
            (p - *t as f64).abs()
        })
        .sum::<f64>()
        / test.len() as f64
}

/// Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let d = b.len();
    for col in 0..d {
        let pivot = (col..d).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let pivot_row = a[col].clone();
        for r in col + 1..d {
            let f = a[r][col] / pivot_row[col];
            for (x, p) in a[r].iter_mut().zip(&pivot_row).skip(col) {
                *x -= f * p;
            }
            b[r] -= f * b[col];
        }
    }
    let mut w = vec![0.0; d];
    for i in (0..d).rev() {
        let s: f64 = (i + 1..d).map(|j| a[i][j] * w[j]).sum();
        w[i] = (b[i] - s) / a[i][i];
    }
    Some(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_informative_column_scores_better() {
        let x: Vec<Vec<f32>> = (0..100)
            .map(|i| vec![i as f32, ((i * 37) % 11) as f32])
            .collect();
        let y: Vec<f32> = x.iter().map(|r| 2.0 * r[0] + 1.0).collect();
        let good = holdout_mae(&x, &y, &[0], 1e-3);
        let bad = holdout_mae(&x, &y, &[1], 1e-3);
        assert!(good < 0.5 && bad > 10.0, "{good} {bad}");
    }
}
