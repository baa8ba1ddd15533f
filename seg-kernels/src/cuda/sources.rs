//! The CUDA C sources of `cuda/`, embedded in the binary.

/// One kernel source file; [`Source::program`] is what NVRTC compiles.
#[derive(Debug)]
pub struct Source {
    /// The file name in `cuda/`, also the program name NVRTC reports.
    pub name: &'static str,
    text: &'static str,
}

/// `cuda/common.cuh`, put in front of every source (NVRTC gets no include path).
const COMMON: &str = include_str!("../../../cuda/common.cuh");

impl Source {
    /// The program text: the common header, then the file.
    pub fn program(&self) -> String {
        format!("{COMMON}\n#line 1 \"{}\"\n{}", self.name, self.text)
    }
}

macro_rules! sources {
    ($($ident:ident = $file:literal),* $(,)?) => {
        $(pub const $ident: Source = Source { name: $file, text: include_str!(concat!("../../../cuda/", $file)) };)*
        /// Every source in `cuda/`.
        pub const SOURCES: &[Source] = &[$($ident),*];
    };
}

sources! {
    ELEMENTWISE = "elementwise.cu",
    CONV = "conv.cu",
    SELECTIVE_SCAN = "selective_scan.cu",
    WINDOW_ATTENTION = "window_attention.cu",
    INDEX = "index.cu",
    REDUCE = "reduce.cu",
    SOFTMAX = "softmax.cu",
    NORM = "norm.cu",
    POOL = "pool.cu",
    INTERPOLATE = "interpolate.cu",
    PAD = "pad.cu",
}
