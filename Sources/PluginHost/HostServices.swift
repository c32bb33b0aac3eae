import COpenBLAS
import CPolyhead
import Foundation

/// The version of this host, as plugins see it in ph_host.host_version.
public let polyheadVersion = "0.1.0"

/// The toolchain this host was compiled with, in the form Swift plugins report.
public let hostSwiftToolchain: String = String(cString: ph_swift_toolchain())

/// Where plugin log lines go. Set it before loading plugins; the default writes
/// "[level] source: message" to standard error.
nonisolated(unsafe) public var pluginLogHandler: @Sendable (_ level: Int32, _ source: String?, _ message: String) -> Void = { level, source, message in
    let levelName = [PH_LOG_DEBUG: "debug", PH_LOG_INFO: "info", PH_LOG_WARNING: "warning", PH_LOG_ERROR: "error"][level] ?? "log"
    let line = "[\(levelName)] \(source.map { "\($0): " } ?? "")\(message)\n"
    FileHandle.standardError.write(Data(line.utf8))
}

/// The services table and the host offer, built once and kept for the process's life:
/// plugins may keep the pointers forever (docs/abi.md, ownership).
enum HostTables {
    nonisolated(unsafe) static let services: UnsafeMutablePointer<ph_host_services> = {
        let table = UnsafeMutablePointer<ph_host_services>.allocate(capacity: 1)
        var services = ph_host_services()
        services.size = UInt32(MemoryLayout<ph_host_services>.size)
        services.allocate = { bytes in
            guard bytes > 0 else { return nil }
            var block: UnsafeMutableRawPointer? = nil
            // Round up: aligned_alloc-style allocators want a multiple of the alignment.
            let rounded = (Int(bytes) + 63) / 64 * 64
            return posix_memalign(&block, 64, rounded) == 0 ? block : nil
        }
        services.release = { block in free(block) }
        services.log = { level, source, message in
            pluginLogHandler(level, source.map { String(cString: $0) }, message.map { String(cString: $0) } ?? "")
        }
        services.sgemm = { transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
            guard m > 0, n > 0, let c else { return }
            guard k > 0, let a, let b else {
                // C = beta * C: OpenBLAS rejects k = 0 on some versions.
                for row in 0..<Int(m) { for column in 0..<Int(n) { c[row * Int(ldc) + column] *= beta } }
                return
            }
            cblas_sgemm(CblasRowMajor,
                        transposeA == PH_TRANSPOSE ? CblasTrans : CblasNoTrans,
                        transposeB == PH_TRANSPOSE ? CblasTrans : CblasNoTrans,
                        blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
        }
        services.rng_next = { rng in RandomStream.from(rng)?.next() ?? 0 }
        services.rng_uniform = { rng, out, count in
            guard let stream = RandomStream.from(rng), let out, count > 0 else { return }
            stream.fillUniform(out, count: Int(count))
        }
        services.rng_normal = { rng, out, count in
            guard let stream = RandomStream.from(rng), let out, count > 0 else { return }
            for index in 0..<Int(count) { out[index] = stream.normal() }
        }
        services.json_type = jsonType
        services.json_bool = jsonBool
        services.json_number = jsonNumber
        services.json_string = jsonString
        services.json_count = jsonCount
        services.json_element = jsonElement
        services.json_member = jsonMember
        services.json_key = jsonKey
        table.initialize(to: services)
        return table
    }()

    nonisolated(unsafe) static let host: UnsafeMutablePointer<ph_host> = {
        let table = UnsafeMutablePointer<ph_host>.allocate(capacity: 1)
        var host = ph_host()
        host.size = UInt32(MemoryLayout<ph_host>.size)
        host.abi_major = UInt16(PH_ABI_MAJOR)
        host.abi_minor = UInt16(PH_ABI_MINOR)
        host.host_version = UnsafePointer(strdup("polyhead \(polyheadVersion)"))
        host.swift_toolchain = UnsafePointer(strdup(hostSwiftToolchain))
        host.services = UnsafePointer(services)
        table.initialize(to: host)
        return table
    }()
}
