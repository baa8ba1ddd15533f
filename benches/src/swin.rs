//! Suite cases of the Swin parts: MONAI-style window attention and one shifted Swin block, as
//! `torch_baseline.py` times them (Swin UNETR stage 1 at a 64^3 input: a 32^3 map padded to 35^3,
//! 125 windows of 7^3, dim 48, 3 heads).

use seg_nn::swin::windows::compute_mask;
use seg_nn::swin::{SwinTransformerBlock, WindowAttention};
use seg_nn::to_device;

use super::{randn, Body, Case};

const DIM: usize = 48;
const HEADS: usize = 3;
const WINDOW: [usize; 3] = [7, 7, 7];
const SHIFT: [usize; 3] = [3, 3, 3];

/// `window_attention_fwdbwd_c48_w7_n125`: `WindowAttention(48, 3, 7^3, qkv_bias)` on `(125, 343,
/// 48)` with the shifted-window mask of a 35^3 map, forward and backward (input and parameters).
pub fn window_attention_case() -> Case {
    let tokens = 125.0 * 343.0;
    let c = DIM as f64;
    // qkv and proj linears plus q k^T and P v, as torch_baseline.py counts them; times 3 for fwd+bwd.
    let fwd = 2.0 * tokens * c * 3.0 * c + 2.0 * 2.0 * tokens * 343.0 * c + 2.0 * tokens * c * c;
    Case::new(
        "window_attention_fwdbwd_c48_w7_n125",
        Some(3.0 * fwd / 1e9),
        Box::new(|device| {
            let mut attn = WindowAttention::new(DIM, HEADS, &WINDOW, true, 1)?;
            to_device(&mut attn, device)?;
            let x = randn(&[125, 343, DIM], 2, device)?.requires_grad();
            let gy = randn(&[125, 343, DIM], 3, device)?;
            let mask = compute_mask(&[35, 35, 35], &WINDOW, &SHIFT)?.to_device(device)?;
            Ok(Box::new(move || attn.forward(&x, Some(&mask))?.backward_with(&gy).map(drop)) as Body)
        }),
    )
}

/// `swin_block_fwdbwd_c48_s32`: one shifted `SwinTransformerBlock(48, 3, 7^3, shift 3^3, mlp 4x)` on
/// `(1, 32, 32, 32, 48)`, forward and backward.
pub fn swin_block_case() -> Case {
    Case::new(
        "swin_block_fwdbwd_c48_s32",
        None,
        Box::new(|device| {
            let mut block = SwinTransformerBlock::new(DIM, HEADS, &WINDOW, &SHIFT, 4.0, true, 1)?;
            to_device(&mut block, device)?;
            let x = randn(&[1, 32, 32, 32, DIM], 2, device)?.requires_grad();
            let gy = randn(&[1, 32, 32, 32, DIM], 3, device)?;
            let mask = compute_mask(&[35, 35, 35], &WINDOW, &SHIFT)?.to_device(device)?;
            Ok(Box::new(move || block.forward(&x, Some(&mask))?.backward_with(&gy).map(drop)) as Body)
        }),
    )
}
