/// Element types Polyhead reads and writes. The raw values are the names the safetensors
/// header uses.
public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case i64 = "I64"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .i64: 8
        }
    }

    /// Dtypes the safetensors format defines but Polyhead does not load, so that an error can
    /// say "valid but unsupported" rather than "unknown".
    static let knownButUnsupported: Set<String> = [
        "BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "F64",
        "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64",
    ]
}

// Tensor bytes are copied straight into native integers and floats; safetensors data is
// little-endian, so a big-endian host would need byte swapping this module does not do.
#if _endian(big)
#error("SafeTensors assumes a little-endian host.")
#endif
