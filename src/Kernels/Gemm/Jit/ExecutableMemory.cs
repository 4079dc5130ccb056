using System.Runtime.InteropServices;

namespace Quantize.Kernels.Gemm.Jit;

/// <summary>
/// Places machine code in memory the CPU may execute: mapped writable, filled, then switched to read + execute
/// (never writable and executable at once). Linux only for now; the pages live as long as the process.
/// </summary>
internal static unsafe partial class ExecutableMemory
{
    private const int ProtectRead = 1, ProtectWrite = 2, ProtectExecute = 4;
    private const int MapPrivate = 0x02, MapAnonymous = 0x20;

    /// <summary>Copies <paramref name="code"/> into fresh executable pages; null when the system refuses (for example SELinux's execmem).</summary>
    public static byte* Place(ReadOnlySpan<byte> code)
    {
        if (!OperatingSystem.IsLinux()) return null;
        nuint length = (nuint)((code.Length + 4095) & ~4095);
        nint pages = Map(0, length, ProtectRead | ProtectWrite, MapPrivate | MapAnonymous, -1, 0);
        if (pages == -1 || pages == 0) return null;
        code.CopyTo(new Span<byte>((void*)pages, code.Length));
        if (Protect(pages, length, ProtectRead | ProtectExecute) != 0)
        {
            Unmap(pages, length);
            return null;
        }
        return (byte*)pages;
    }

    [LibraryImport("libc", EntryPoint = "mmap")]
    private static partial nint Map(nint address, nuint length, int protection, int flags, int fileDescriptor, nint offset);

    [LibraryImport("libc", EntryPoint = "mprotect")]
    private static partial int Protect(nint address, nuint length, int protection);

    [LibraryImport("libc", EntryPoint = "munmap")]
    private static partial int Unmap(nint address, nuint length);
}
