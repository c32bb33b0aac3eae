import CPolyhead
import Foundation

/// An encoder linear layer offered to adapters.
public struct LinearSite: Equatable, Sendable {
    public let name: String
    public let inFeatures: Int
    public let outFeatures: Int
    public init(name: String, inFeatures: Int, outFeatures: Int) {
        self.name = name
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
    }
}

/// What every kind of instance shares: the plugin's instance pointer, the host-owned
/// parameter block bound to it, its random stream, and the lock that serialises calls
/// (the ABI's thread rule: one call at a time per instance).
final class InstanceCore: @unchecked Sendable {
    let component: Component
    let name: String
    let inputWidth: Int
    let handle: OpaquePointer
    let parameters: ParameterBlock
    let random: RandomStream
    let lock = NSLock()
    /// Task names and linear sites: valid until destroy.
    private let taskNamePointers: UnsafeMutablePointer<UnsafePointer<CChar>?>
    private let sitePointers: UnsafeMutablePointer<UnsafePointer<ph_linear_site>?>
    private let taskCount: Int
    private let siteCount: Int

    var label: String { "\(component.qualifiedName) (instance \"\(name)\")" }

    init(component: Component, name: String, configJSON: String, inputWidth: Int, seed: UInt64,
         taskNames: [String] = [], sites: [LinearSite] = []) throws {
        self.component = component
        self.name = name
        self.inputWidth = inputWidth
        let label = "\(component.qualifiedName) (instance \"\(name)\")"
        let config = try JSONValue(parsing: configJSON, source: "\(label) config")
        guard case .object = config else {
            throw PluginError(.invalidRequest, "\(label): config must be a JSON object like {\"labels\": [...]}, got \(configJSON.prefix(60))")
        }
        guard inputWidth >= 1 else { throw PluginError(.invalidRequest, "\(label): input width must be at least 1") }
        random = RandomStream(seed: seed, name: name)

        taskCount = taskNames.count
        taskNamePointers = .allocate(capacity: max(taskNames.count, 1))
        for (index, task) in taskNames.enumerated() { taskNamePointers[index] = UnsafePointer(strdup(task)) }
        siteCount = sites.count
        sitePointers = .allocate(capacity: max(sites.count, 1))
        for (index, site) in sites.enumerated() {
            let pointer = UnsafeMutablePointer<ph_linear_site>.allocate(capacity: 1)
            pointer.initialize(to: ph_linear_site(size: UInt32(MemoryLayout<ph_linear_site>.size), name: UnsafePointer(strdup(site.name)),
                                                  in_features: Int64(site.inFeatures), out_features: Int64(site.outFeatures)))
            sitePointers[index] = UnsafePointer(pointer)
        }

        let configTree = JSONNode(config)
        let declarer = ParameterDeclarer()
        let nameCopy = strdup(name)!, configCopy = strdup(configJSON)!
        defer { free(nameCopy); free(configCopy) }
        var args = ph_create_args()
        args.size = UInt32(MemoryLayout<ph_create_args>.size)
        args.instance_name = UnsafePointer(nameCopy)
        args.config_json = UnsafePointer(configCopy)
        args.config = configTree.opaque
        args.input_width = Int64(inputWidth)
        args.services = UnsafePointer(HostTables.services)
        args.rng = random.opaque
        args.declare_parameter = declareParameter
        args.declarer = declarer.opaque
        args.task_count = Int32(taskNames.count)
        args.task_names = UnsafePointer(taskNamePointers)
        args.site_count = Int64(sites.count)
        args.sites = UnsafePointer(sitePointers)

        var created: OpaquePointer? = nil
        let collector = ErrorCollector()
        let status = withExtendedLifetime((configTree, declarer, collector, random)) {
            component.table.pointee.create(&args, &created, collector.sink)
        }
        do {
            try collector.check(status, "\(label) create")
            guard let created else { throw PluginError(.callFailed, "\(label) create returned OK but no instance") }
            handle = created
        } catch {
            if let created { component.table.pointee.destroy(created) }
            InstanceCore.freeNames(taskNamePointers, taskNames.count, sitePointers, sites.count)
            throw error
        }

        parameters = ParameterBlock(parameters: declarer.parameters)
        parameters.initialize(random: RandomStream(seed: seed, name: name + "/init"))
        try bindParameters()
    }

    /// Views of values and gradients handed to bind_parameters: valid until destroy.
    private var boundViews: (UnsafeMutablePointer<ph_tensor>, UnsafeMutablePointer<UnsafePointer<ph_tensor>?>)?

    private func bindParameters() throws {
        let count = parameters.parameters.count
        let tensors = UnsafeMutablePointer<ph_tensor>.allocate(capacity: max(2 * count, 1))
        let pointers = UnsafeMutablePointer<UnsafePointer<ph_tensor>?>.allocate(capacity: max(2 * count, 1))
        for (index, parameter) in parameters.parameters.enumerated() {
            let value = parameters.values.baseAddress! + parameter.offset
            let gradient = parameter.trainable ? parameters.gradients.baseAddress! + parameter.offset : nil
            (tensors + index).initialize(to: tensorView(value, dtype: PH_DTYPE_F32, shape: parameter.shape))
            (tensors + count + index).initialize(to: tensorView(gradient, dtype: PH_DTYPE_F32, shape: parameter.shape))
            pointers[index] = UnsafePointer(tensors + index)
            pointers[count + index] = UnsafePointer(tensors + count + index)
        }
        boundViews = (tensors, pointers)
        let bind = component.table.pointee.bind_parameters!
        try ErrorCollector.call("\(label) bind_parameters") { sink in
            bind(handle, Int64(count), UnsafePointer(pointers), UnsafePointer(pointers + count), sink)
        }
    }

    private static func freeNames(_ tasks: UnsafeMutablePointer<UnsafePointer<CChar>?>, _ taskCount: Int,
                                  _ sites: UnsafeMutablePointer<UnsafePointer<ph_linear_site>?>, _ siteCount: Int) {
        for index in 0..<taskCount { free(UnsafeMutableRawPointer(mutating: tasks[index])) }
        for index in 0..<siteCount {
            if let site = sites[index] {
                free(UnsafeMutableRawPointer(mutating: site.pointee.name))
                UnsafeMutablePointer(mutating: site).deallocate()
            }
        }
        tasks.deallocate()
        sites.deallocate()
    }

    deinit {
        component.table.pointee.destroy(handle)
        if let (tensors, pointers) = boundViews {
            tensors.deallocate()
            pointers.deallocate()
        }
        InstanceCore.freeNames(taskNamePointers, taskCount, sitePointers, siteCount)
    }

    /// Runs `body` holding the instance's lock.
    func serialized<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}

/// A forward pass's plugin-owned saved state. Released exactly once, when the last
/// reference goes (after backward, or when a step is abandoned).
public final class SavedState: @unchecked Sendable {
    private let core: InstanceCore
    let pointer: OpaquePointer?
    private let release: @convention(c) (OpaquePointer?, OpaquePointer?) -> Void

    init(core: InstanceCore, pointer: OpaquePointer?, release: @escaping @convention(c) (OpaquePointer?, OpaquePointer?) -> Void) {
        self.core = core
        self.pointer = pointer
        self.release = release
    }

    deinit {
        guard let pointer else { return }
        core.serialized { release(core.handle, pointer) }
    }
}

/// Checks a packed batch before it crosses the boundary, so a plugin never sees
/// inconsistent shapes.
func validatePacked(features: UnsafeBufferPointer<Float>, width: Int, offsets: [Int64], wordIds: [Int32]?,
                    label: String) throws -> (tokens: Int, sequences: Int) {
    guard offsets.count >= 2, offsets[0] == 0 else {
        throw PluginError(.invalidRequest, "\(label): sequence offsets must start at 0 and hold at least one sequence, got \(offsets.prefix(4))")
    }
    for index in 1..<offsets.count where offsets[index] <= offsets[index - 1] {
        throw PluginError(.invalidRequest, "\(label): sequence \(index - 1) is empty or offsets decrease (\(offsets[index - 1]) then \(offsets[index]))")
    }
    let tokens = Int(offsets.last!)
    guard features.count == tokens * width else {
        throw PluginError(.invalidRequest, "\(label): features hold \(features.count) values but \(tokens) tokens x width \(width) = \(tokens * width)")
    }
    if let wordIds, wordIds.count != tokens {
        throw PluginError(.invalidRequest, "\(label): \(wordIds.count) word ids for \(tokens) tokens")
    }
    return (tokens, offsets.count - 1)
}

/// Builds the ph_head_input (and its three tensors) on the stack for one call.
func withHeadInput<R>(features: UnsafeBufferPointer<Float>, width: Int, offsets: [Int64], wordIds: [Int32]?,
                      training: Bool, _ body: (UnsafeMutablePointer<ph_head_input>) throws -> R) rethrows -> R {
    let tokens = Int(offsets.last ?? 0)
    return try offsets.withUnsafeBufferPointer { offsetBuffer in
        try withTensorView(features.baseAddress, dtype: PH_DTYPE_F32, shape: [tokens, width]) { featureView in
            try withTensorView(offsetBuffer.baseAddress, dtype: PH_DTYPE_I64, shape: [offsets.count]) { offsetView in
                func run(_ wordView: UnsafeMutablePointer<ph_tensor>?) throws -> R {
                    var input = ph_head_input()
                    input.size = UInt32(MemoryLayout<ph_head_input>.size)
                    input.training = training ? 1 : 0
                    input.features = UnsafePointer(featureView)
                    input.sequence_offsets = UnsafePointer(offsetView)
                    input.word_ids = wordView.map { UnsafePointer($0) }
                    return try body(&input)
                }
                guard let wordIds else { return try run(nil) }
                return try wordIds.withUnsafeBufferPointer { wordBuffer in
                    try withTensorView(wordBuffer.baseAddress, dtype: PH_DTYPE_I32, shape: [tokens]) { try run($0) }
                }
            }
        }
    }
}

func requireFinite(_ values: UnsafeBufferPointer<Float>, _ what: @autoclosure () -> String) throws {
    guard !allFinite(values) else { return }
    for (index, value) in values.enumerated() where !value.isFinite {
        throw PluginError(.callFailed, "\(what()) produced a non-finite value (\(value)) at element \(index); lower the learning rate or check the inputs")
    }
}

/// A float is NaN or infinite exactly when its exponent bits are all ones. Eight lanes at a
/// time, so checking a [T, H] feature gradient costs about as much as reading it once.
func allFinite(_ values: UnsafeBufferPointer<Float>) -> Bool {
    guard let base = values.baseAddress else { return true }
    let raw = UnsafeRawPointer(base)
    let mask = SIMD8<UInt32>(repeating: 0x7f80_0000)
    var largest = SIMD8<UInt32>(repeating: 0)
    var index = 0
    while index + 8 <= values.count {
        largest = pointwiseMax(largest, raw.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<UInt32>.self) & mask)
        index += 8
    }
    var tail: UInt32 = largest.max()
    while index < values.count {
        tail = max(tail, raw.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self) & 0x7f80_0000)
        index += 1
    }
    return tail != 0x7f80_0000
}
