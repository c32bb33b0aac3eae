// Dropout with seeded, deterministic masks, and the residual adds it is fused with.
//
// Masks come from a counter-based hash of (seed, stream, element index): the same seed
// gives the same mask whatever the thread split, and no generator state is shared.
// Keep flags are saved as one byte per element for the backward pass.

/// A mixing function of SplitMix64: a bijection of UInt64 with good avalanche.
@inline(__always)
func mix64(_ value: UInt64) -> UInt64 {
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// mask[count] = 1 where an element is kept (probability 1 - p), 0 where dropped.
///
/// `stream` separates the dropout sites of one step (layer, site); `seed` changes per step.
/// p is applied with 32-bit resolution.
public func dropoutMask(_ mask: UnsafeMutablePointer<UInt8>, count: Int, probability: Float, seed: UInt64, stream: UInt64) {
    let threshold = UInt64((Double(probability) * 4_294_967_296).rounded())
    let base = mix64(seed ^ mix64(stream))
    KernelThreads.parallelRanges((count + 1) / 2, minimumChunk: 16384) { range in
        for pair in range {
            // One 64-bit hash gives two 32-bit uniforms.
            let bits = mix64(base &+ UInt64(pair))
            let first = pair * 2
            mask[first] = (bits & 0xFFFF_FFFF) >= threshold ? 1 : 0
            if first + 1 < count { mask[first + 1] = (bits >> 32) >= threshold ? 1 : 0 }
        }
    }
}

/// out[count] = inp * mask * scale + residual (residual may be nil; mask nil means no dropout,
/// scale ignored). scale is 1 / (1 - p). `out` may alias `inp` or `residual`.
public func dropoutResidualForward(
    _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, mask: UnsafePointer<UInt8>?, scale: Float,
    residual: UnsafePointer<Float>?, count: Int
) {
    KernelThreads.parallelRanges(count, minimumChunk: 1 << 15) { range in
        for index in range {
            var value = inp[index]
            if let mask { value = mask[index] != 0 ? value * scale : 0 }
            if let residual { value += residual[index] }
            out[index] = value
        }
    }
}

/// dinp[count] += dout * mask * scale (mask nil: dinp += dout).
public func dropoutBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, mask: UnsafePointer<UInt8>?, scale: Float, count: Int
) {
    KernelThreads.parallelRanges(count, minimumChunk: 1 << 15) { range in
        for index in range {
            if let mask {
                if mask[index] != 0 { dinp[index] += dout[index] * scale }
            } else {
                dinp[index] += dout[index]
            }
        }
    }
}

/// out[count] = a + b (the residual connection). `out` may alias either input.
public func residualForward(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
    KernelThreads.parallelRanges(count, minimumChunk: 1 << 15) { range in
        for index in range { out[index] = a[index] + b[index] }
    }
}

/// da[count] += dout and db[count] += dout (either may be nil).
public func residualBackward(da: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, count: Int) {
    KernelThreads.parallelRanges(count, minimumChunk: 1 << 15) { range in
        for index in range {
            da?[index] += dout[index]
            db?[index] += dout[index]
        }
    }
}
