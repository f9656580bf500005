//! ggml tensor types (block sizes) and the tensor directory entries.

use super::*;

macro_rules! ggml_types {
    ($($variant:ident = $id:literal, $name:literal, $block:literal, $bytes:literal;)*) => {
        /// A ggml tensor data type (`ggml_type`), named as in ggml; `Unknown` keeps any other id.
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum GgmlType {
            $(
                #[doc = concat!("ggml `", $name, "` (id ", $id, "): ", $block,
                                " elements per ", $bytes, "-byte block.")]
                $variant,
            )*
            /// A type id this reader does not know (its block size, hence its byte size, is unknown).
            Unknown(u32),
        }

        impl GgmlType {
            /// Decodes a ggml type id.
            pub fn from_id(id: u32) -> Self {
                match id {
                    $($id => GgmlType::$variant,)*
                    other => GgmlType::Unknown(other),
                }
            }

            /// The numeric ggml type id.
            pub fn id(self) -> u32 {
                match self {
                    $(GgmlType::$variant => $id,)*
                    GgmlType::Unknown(id) => id,
                }
            }

            /// ggml's name for the type (`"Q4_1"`), or `"unknown"`.
            pub fn name(self) -> &'static str {
                match self {
                    $(GgmlType::$variant => $name,)*
                    GgmlType::Unknown(_) => "unknown",
                }
            }

            /// `(elements per block, bytes per block)`, `None` for an unknown type.
            pub fn block_layout(self) -> Option<(usize, usize)> {
                match self {
                    $(GgmlType::$variant => Some(($block, $bytes)),)*
                    GgmlType::Unknown(_) => None,
                }
            }
        }
    };
}

// Block sizes from ggml-common.h (ids 4, 5, 31-33, 36-38 were removed from ggml).
ggml_types! {
    F32 = 0, "F32", 1, 4;
    F16 = 1, "F16", 1, 2;
    Q4_0 = 2, "Q4_0", 32, 18;
    Q4_1 = 3, "Q4_1", 32, 20;
    Q5_0 = 6, "Q5_0", 32, 22;
    Q5_1 = 7, "Q5_1", 32, 24;
    Q8_0 = 8, "Q8_0", 32, 34;
    Q8_1 = 9, "Q8_1", 32, 36;
    Q2_K = 10, "Q2_K", 256, 84;
    Q3_K = 11, "Q3_K", 256, 110;
    Q4_K = 12, "Q4_K", 256, 144;
    Q5_K = 13, "Q5_K", 256, 176;
    Q6_K = 14, "Q6_K", 256, 210;
    Q8_K = 15, "Q8_K", 256, 292;
    IQ2_XXS = 16, "IQ2_XXS", 256, 66;
    IQ2_XS = 17, "IQ2_XS", 256, 74;
    IQ3_XXS = 18, "IQ3_XXS", 256, 98;
    IQ1_S = 19, "IQ1_S", 256, 50;
    IQ4_NL = 20, "IQ4_NL", 32, 18;
    IQ3_S = 21, "IQ3_S", 256, 110;
    IQ2_S = 22, "IQ2_S", 256, 82;
    IQ4_XS = 23, "IQ4_XS", 256, 136;
    I8 = 24, "I8", 1, 1;
    I16 = 25, "I16", 1, 2;
    I32 = 26, "I32", 1, 4;
    I64 = 27, "I64", 1, 8;
    F64 = 28, "F64", 1, 8;
    IQ1_M = 29, "IQ1_M", 256, 56;
    BF16 = 30, "BF16", 1, 2;
    TQ1_0 = 34, "TQ1_0", 256, 54;
    TQ2_0 = 35, "TQ2_0", 256, 66;
    MXFP4 = 39, "MXFP4", 32, 17;
}

impl GgmlType {
    /// Whether [`GgufFile::tensor_f32`] can decode this type.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            GgmlType::F32
                | GgmlType::F16
                | GgmlType::BF16
                | GgmlType::F64
                | GgmlType::Q4_0
                | GgmlType::Q4_1
                | GgmlType::Q5_0
                | GgmlType::Q5_1
                | GgmlType::Q8_0
                | GgmlType::Q2_K
                | GgmlType::Q3_K
                | GgmlType::Q4_K
                | GgmlType::Q5_K
                | GgmlType::Q6_K
        )
    }
}

impl fmt::Display for GgmlType {
    /// Formats as `Q6_K (14)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.id())
    }
}

/// Where one tensor lives in a GGUF file and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufTensorInfo {
    pub(super) name: String,
    pub(super) ggml_dims: Vec<usize>,
    pub(super) dtype: GgmlType,
    pub(super) offset: u64,
    pub(super) n_elements: usize,
    pub(super) n_bytes: Option<usize>,
}

impl GgufTensorInfo {
    /// Tensor name (`blk.0.attn_q.weight`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Dimensions in GGUF order: `ne[0]` (fastest-varying) first.
    pub fn ggml_dims(&self) -> &[usize] {
        &self.ggml_dims
    }

    /// Shape in PyTorch / Hugging Face row-major order (the GGUF dimensions reversed).
    pub fn shape(&self) -> Vec<usize> {
        self.ggml_dims.iter().rev().copied().collect()
    }

    /// Storage data type.
    pub fn dtype(&self) -> GgmlType {
        self.dtype
    }

    /// Offset of the data relative to the start of the data section.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of elements (product of the dimensions).
    pub fn n_elements(&self) -> usize {
        self.n_elements
    }

    /// Size of the stored data in bytes, `None` when the type is unknown.
    pub fn n_bytes(&self) -> Option<usize> {
        self.n_bytes
    }
}
