// Threading plan for the kernels.
//
// Two policies, chosen once per process and measured in docs/performance:
// - `.ownSplit` (default): OpenBLAS runs one thread per call, and Polyhead splits each large
//   GEMM, each token-wise loop and attention's (sequence, head) pairs across its own workers
//   with DispatchQueue.concurrentPerform. BLAS threads never compete with ours and never
//   spin idle between calls.
// - `.blasThreads`: OpenBLAS gets all workers for every GEMM; everything else runs serially.

import COpenBLAS
import Dispatch
import Foundation

public enum ThreadingPolicy: String, Sendable, CaseIterable {
    case ownSplit = "own-split"
    case blasThreads = "blas-threads"
}

public enum KernelThreads {
    /// Number of workers the kernels split work over.
    nonisolated(unsafe) public private(set) static var workerCount: Int = defaultWorkerCount()
    nonisolated(unsafe) public private(set) static var policy: ThreadingPolicy = .ownSplit
    nonisolated(unsafe) private static var configured = false

    /// Sets the policy and the worker count (default: POLYHEAD_THREADS, else the number of
    /// active processors). Call before the first kernel; calling again reconfigures.
    public static func configure(policy: ThreadingPolicy = .ownSplit, workers: Int? = nil) {
        self.policy = policy
        workerCount = max(1, workers ?? defaultWorkerCount())
        openblas_set_num_threads(Int32(policy == .blasThreads ? workerCount : 1))
        configured = true
    }

    /// Applies the default configuration once, lazily, from the first kernel call.
    @inline(__always) static func ensureConfigured() {
        if !configured { configure() }
    }

    /// Workers Polyhead itself uses for splittable loops (1 under `.blasThreads`).
    static var splitCount: Int {
        ensureConfigured()
        return policy == .ownSplit ? workerCount : 1
    }

    private static func defaultWorkerCount() -> Int {
        if let text = ProcessInfo.processInfo.environment["POLYHEAD_THREADS"], let value = Int(text), value > 0 {
            return value
        }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    /// Runs `body` over `0..<count` split into at most `splitCount` contiguous ranges, each
    /// at least `minimumChunk` long. Runs inline when one range suffices.
    public static func parallelRanges(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(splitCount, max(1, count / max(1, minimumChunk)))
        if chunks <= 1 {
            body(0..<count)
            return
        }
        forEachWorker(chunks) { chunk in
            let start = count * chunk / chunks
            let end = count * (chunk + 1) / chunks
            if start < end { body(start..<end) }
        }
    }

    /// Runs `body(worker)` for `worker` in `0..<workers` concurrently (inline when 1).
    static func forEachWorker(_ workers: Int, _ body: (Int) -> Void) {
        if workers <= 1 {
            body(0)
        } else {
            // concurrentPerform wants a @Sendable closure; kernels hand each worker disjoint
            // ranges of raw buffers, which the compiler cannot see, so the check is waived
            // here, in one place, and concurrentPerform returns before `body` goes away.
            withoutActuallyEscaping(body) { escapable in
                let box = UncheckedSendable(escapable)
                DispatchQueue.concurrentPerform(iterations: workers) { worker in box.value(worker) }
            }
        }
    }
}

extension KernelThreads {
    /// Runs `body(item, worker)` for every item in `0..<count` on at most `splitCount`
    /// workers, each taking the next item when it finishes one. Unlike a fixed split, a
    /// worker that the OS deschedules (a loaded machine) holds up only the item it is on.
    /// `worker` is in `0..<workers` and unique among concurrent calls: index per-worker
    /// scratch with it. Items must be independent.
    static func dynamicItems(_ count: Int, _ body: (_ item: Int, _ worker: Int) -> Void) {
        let workers = min(splitCount, count)
        if workers <= 1 {
            for item in 0..<count { body(item, 0) }
            return
        }
        let queue = ItemQueue(count: count)
        forEachWorker(workers) { worker in
            while let item = queue.next() { body(item, worker) }
        }
    }
}

/// A shared counter handing out item indices once each.
private final class ItemQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var position = 0
    private let count: Int
    init(count: Int) { self.count = count }

    func next() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard position < count else { return nil }
        position += 1
        return position - 1
    }
}

/// Carries a value into a @Sendable closure without the compiler's check (see forEachWorker).
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
