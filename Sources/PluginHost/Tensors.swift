import CPolyhead
import Foundation

/// A row-major contiguous view of `data` with `shape`, as passed across the boundary.
func tensorView(_ data: UnsafeMutableRawPointer?, dtype: Int32, shape: [Int]) -> ph_tensor {
    var tensor = ph_tensor()
    tensor.size = UInt32(MemoryLayout<ph_tensor>.size)
    tensor.dtype = dtype
    tensor.ndim = Int32(shape.count)
    tensor.data = data
    var stride = 1
    withUnsafeMutableBytes(of: &tensor.shape) { shapeBytes in
        withUnsafeMutableBytes(of: &tensor.strides) { strideBytes in
            let shapes = shapeBytes.bindMemory(to: Int64.self)
            let strides = strideBytes.bindMemory(to: Int64.self)
            for dimension in shape.indices.reversed() {
                shapes[dimension] = Int64(shape[dimension])
                strides[dimension] = Int64(stride)
                stride *= shape[dimension]
            }
        }
    }
    return tensor
}

/// Calls `body` with a pointer to a stack view of `data` (valid only inside `body`).
func withTensorView<R>(_ data: UnsafeRawPointer?, dtype: Int32, shape: [Int],
                       _ body: (UnsafeMutablePointer<ph_tensor>) throws -> R) rethrows -> R {
    var view = tensorView(UnsafeMutableRawPointer(mutating: data), dtype: dtype, shape: shape)
    return try body(&view)
}

/// A heap tensor (data and view together) for arguments that must outlive a Swift scope.
final class TensorStorage {
    let view: UnsafeMutablePointer<ph_tensor>
    private let data: UnsafeMutableRawPointer

    init(floats: [Float], shape: [Int], what: String) throws {
        try TensorStorage.check(count: floats.count, shape: shape, what: what)
        let data = UnsafeMutableRawPointer.allocate(byteCount: max(floats.count, 1) * 4, alignment: 64)
        floats.withUnsafeBytes { if let base = $0.baseAddress { data.copyMemory(from: base, byteCount: $0.count) } }
        self.data = data
        view = .allocate(capacity: 1)
        view.initialize(to: tensorView(data, dtype: PH_DTYPE_F32, shape: shape))
    }

    init(indices: [Int64], shape: [Int], what: String) throws {
        try TensorStorage.check(count: indices.count, shape: shape, what: what)
        let data = UnsafeMutableRawPointer.allocate(byteCount: max(indices.count, 1) * 8, alignment: 64)
        indices.withUnsafeBytes { if let base = $0.baseAddress { data.copyMemory(from: base, byteCount: $0.count) } }
        self.data = data
        view = .allocate(capacity: 1)
        view.initialize(to: tensorView(data, dtype: PH_DTYPE_I64, shape: shape))
    }

    private static func check(count: Int, shape: [Int], what: String) throws {
        guard shape.count <= Int(PH_MAX_DIMS), shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == count else {
            throw PluginError(.invalidRequest, "\(what): shape \(shape) does not hold \(count) values (at most \(PH_MAX_DIMS) dimensions)")
        }
    }

    deinit {
        data.deallocate()
        view.deallocate()
    }
}
