// Flat, aligned Float storage: the one allocation behind parameter blocks, gradient blocks
// and activation arenas.

import Foundation

/// A fixed-size, 64-byte aligned, zero-initialised array of Float owned by this object.
///
/// Kernels take raw pointers; this class only owns the memory. It is `@unchecked Sendable`
/// because callers hand disjoint ranges to worker threads themselves.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    /// Allocates `count` floats set to zero.
    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer: negative count \(count)")
        self.count = count
        // Cache-line alignment keeps SIMD loads on one line and rows of a block predictable.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    /// Copies `values` into a new buffer.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    deinit { pointer.deallocate() }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    /// Sets every element to zero (zero-grad is one call).
    public func zero() { pointer.update(repeating: 0, count: count) }

    /// A copy of the contents as an array.
    public func toArray() -> [Float] { Array(buffer) }
}

/// Same as `FloatBuffer` for byte masks (dropout keep flags).
public final class ByteBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<UInt8>

    public init(count: Int) {
        precondition(count >= 0, "ByteBuffer: negative count \(count)")
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
        pointer = raw.bindMemory(to: UInt8.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { pointer.deallocate() }
}

/// Reusable scratch memory for kernels that need a few hundred KB per call (attention's
/// per-worker blocks): a fresh allocation of that size is a fresh mmap, and faulting its pages
/// in on every call showed up in profiles. Buffers go back to the pool after the call; the
/// lock only guards the list, never the memory.
final class ScratchPool: @unchecked Sendable {
    static let shared = ScratchPool()
    private let lock = NSLock()
    private var free: [FloatBuffer] = []

    /// A buffer of at least `count` floats (contents unspecified) to hand back with `release`.
    func acquire(_ count: Int) -> FloatBuffer {
        lock.lock()
        defer { lock.unlock() }
        if let index = free.firstIndex(where: { $0.count >= count }) { return free.remove(at: index) }
        return FloatBuffer(count: count)
    }

    func release(_ buffer: FloatBuffer) {
        lock.lock()
        defer { lock.unlock() }
        // A handful of buffers covers every caller; the largest are the most reusable.
        free.append(buffer)
        if free.count > 8 { free.sort { $0.count > $1.count }; free.removeLast() }
    }

    /// Runs `body` with a scratch buffer of at least `count` floats.
    func with<Result>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> Result) rethrows -> Result {
        let buffer = acquire(count)
        defer { release(buffer) }
        return try body(buffer.pointer)
    }
}
