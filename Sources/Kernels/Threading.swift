// Threading plan for the kernels.
//
// Two policies, chosen once per process and measured in docs/performance.md:
// - `.ownSplit` (default): OpenBLAS runs one thread per call, and Polyhead splits each large
//   GEMM, each token-wise loop and attention's (sequence, head) pairs across its own workers
//   (`WorkerPool`: threads started once, parked on a condition variable between jobs). BLAS
//   threads never compete with ours and never spin idle between calls.
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

    /// Runs `body(worker)` for `worker` in `0..<workers` concurrently (inline when 1); the
    /// calling thread runs worker 0.
    static func forEachWorker(_ workers: Int, _ body: (Int) -> Void) {
        if workers <= 1 {
            body(0)
        } else {
            WorkerPool.shared.run(workers, body)
        }
    }
}

/// Polyhead's own worker threads: started on first use, parked on a condition variable
/// between jobs, and always exactly the requested number of workers per job.
///
/// It replaces DispatchQueue.concurrentPerform, which on Linux sizes its thread pool from the
/// machine's current load: with other processes busy (load 5-8 on 2 cores) it often ran every
/// iteration on the calling thread, so a "2-thread" run used one core. A job's closure is
/// called once per worker index; the caller is worker 0 and returns when all are done.
/// A job started from inside a job (or while another thread's job runs) runs serially on the
/// caller instead of waiting for busy workers.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    private var mutex = pthread_mutex_t()
    private var workAvailable = pthread_cond_t()
    private var workDone = pthread_cond_t()
    private var threads = 0
    private var generation = 0
    private var job: UnsafeRawPointer?       // a (Int) -> Void closure, valid during `run`
    private var jobWorkers = 0
    private var pending = 0
    private var busy = false

    private init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&workAvailable, nil)
        pthread_cond_init(&workDone, nil)
    }

    func run(_ workers: Int, _ body: (Int) -> Void) {
        pthread_mutex_lock(&mutex)
        if busy {
            pthread_mutex_unlock(&mutex)
            for worker in 0..<workers { body(worker) }
            return
        }
        busy = true
        while threads < workers - 1 { startThread(index: threads + 1) }
        withoutActuallyEscaping(body) { escapable in
            var closure = escapable
            withUnsafePointer(to: &closure) { pointer in
                job = UnsafeRawPointer(pointer)
                jobWorkers = workers
                pending = workers - 1
                generation &+= 1
                pthread_cond_broadcast(&workAvailable)
                pthread_mutex_unlock(&mutex)
                pointer.pointee(0)
                pthread_mutex_lock(&mutex)
                while pending > 0 { pthread_cond_wait(&workDone, &mutex) }
                job = nil
            }
        }
        busy = false
        pthread_mutex_unlock(&mutex)
    }

    /// Called with the mutex held.
    private func startThread(index: Int) {
        threads += 1
        // The thread may first take the mutex after this job was published: it starts from
        // the generation before it, so it cannot miss the job.
        let start = generation
        let thread = Thread { [unowned self] in self.workerLoop(index: index, seen: start) }
        thread.name = "polyhead-worker-\(index)"
        thread.start()
    }

    private func workerLoop(index: Int, seen start: Int) {
        var seen = start
        pthread_mutex_lock(&mutex)
        while true {
            while generation == seen { pthread_cond_wait(&workAvailable, &mutex) }
            seen = generation
            guard index < jobWorkers, let job else { continue }
            pthread_mutex_unlock(&mutex)
            job.assumingMemoryBound(to: ((Int) -> Void).self).pointee(index)
            pthread_mutex_lock(&mutex)
            pending -= 1
            if pending == 0 { pthread_cond_signal(&workDone) }
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

