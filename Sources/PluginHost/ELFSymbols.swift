import Foundation

/// What a shared library's dynamic symbol table says about one symbol, read from the file
/// without loading it. Rationale: scanning a plugin directory must not run the constructors
/// of every .so that happens to sit there; only files that export the entry function are
/// dlopen'ed.
enum ExportedSymbol: Equatable {
    case function
    case data
    case absent
    /// Not a 64-bit little-endian ELF shared object (or truncated).
    case notELF
}

enum ELFSymbols {
    /// Looks `name` up among the defined dynamic symbols of the ELF file at `path`.
    static func lookup(_ name: String, in path: String) -> ExportedSymbol {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else { return .notELF }
        return data.withUnsafeBytes { lookup(name, in: $0) }
    }

    static func lookup(_ name: String, in bytes: UnsafeRawBufferPointer) -> ExportedSymbol {
        func read<T: FixedWidthInteger>(_ offset: Int, as: T.Type) -> T? {
            guard offset >= 0, offset + MemoryLayout<T>.size <= bytes.count else { return nil }
            return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        // e_ident: magic, ELFCLASS64 (2), ELFDATA2LSB (1); e_type ET_DYN (3).
        guard bytes.count >= 64, bytes[0] == 0x7f, bytes[1] == 0x45, bytes[2] == 0x4c, bytes[3] == 0x46,
              bytes[4] == 2, bytes[5] == 1, read(16, as: UInt16.self) == 3,
              let sectionOffset = read(0x28, as: UInt64.self),
              let sectionEntrySize = read(0x3a, as: UInt16.self),
              let sectionCount = read(0x3c, as: UInt16.self), sectionEntrySize >= 64
        else { return .notELF }

        struct Section { let type: UInt32; let offset: Int; let size: Int; let link: Int; let entrySize: Int }
        func section(_ index: Int) -> Section? {
            let base = Int(sectionOffset) + index * Int(sectionEntrySize)
            guard let type = read(base + 4, as: UInt32.self), let offset = read(base + 0x18, as: UInt64.self),
                  let size = read(base + 0x20, as: UInt64.self), let link = read(base + 0x28, as: UInt32.self),
                  let entrySize = read(base + 0x38, as: UInt64.self),
                  offset <= UInt64(bytes.count), size <= UInt64(bytes.count) - offset
            else { return nil }
            return Section(type: type, offset: Int(offset), size: Int(size), link: Int(link), entrySize: Int(entrySize))
        }

        let wanted = Array(name.utf8)
        for index in 0..<Int(sectionCount) {
            guard let symbols = section(index) else { return .notELF }
            guard symbols.type == 11 /* SHT_DYNSYM */ else { continue }
            guard symbols.entrySize >= 24, let strings = section(symbols.link) else { return .notELF }
            for symbol in stride(from: symbols.offset, to: symbols.offset + symbols.size - 23, by: symbols.entrySize) {
                guard let nameOffset = read(symbol, as: UInt32.self), let info = read(symbol + 4, as: UInt8.self),
                      let sectionIndex = read(symbol + 6, as: UInt16.self) else { return .notELF }
                let start = strings.offset + Int(nameOffset)
                guard sectionIndex != 0, start + wanted.count < strings.offset + strings.size,
                      bytes[start + wanted.count] == 0,
                      zip(wanted.indices, wanted).allSatisfy({ bytes[start + $0] == $1 })
                else { continue }
                // STT_FUNC = 2, STT_GNU_IFUNC = 10.
                let symbolType = info & 0xf
                return symbolType == 2 || symbolType == 10 ? .function : .data
            }
        }
        return .absent
    }
}
