using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Quantize.Kernels.Gemm.Jit;

/// <summary>
/// The int8 quad micro-kernels for AVX-512 VNNI, assembled at first use: a tile of 6 rows x 16, 32, 48 or 64 columns
/// (one to four 16-column panels of <see cref="PackedInt8Matrix"/>'s quad layout), one <c>vpdpbusd</c> per row and
/// panel per quad of K: 64 exact u8 x s8 multiply-adds an instruction, against 32 for three instructions on AVX2.
/// <para>
/// Registers: zmm0..23 accumulate (row r, panel p in zmm(4r + p)), zmm24..27 hold a quad of the panels, zmm28/29 a
/// broadcast quad of A. Arguments come in one struct (<see cref="Arguments"/>), its address in the first argument
/// register of the System V ABI (rdi); only caller-saved registers are used.
/// </para>
/// </summary>
internal static unsafe class Int8VnniKernels
{
    /// <summary>Rows of a tile (the quad packing of A).</summary>
    public const int Rows = Int8QuadPacking.Rows;

    /// <summary>Panels one call covers at most.</summary>
    public const int MaxPanels = 4;

    /// <summary>What one kernel call reads: packed A and B at the K block, the tile of C, the distances between them.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Arguments
    {
        /// <summary>Packed A: per quad, six int32 (one quad of four uint8 per row).</summary>
        public int* A;

        /// <summary>The first panel at this K block; the next panels follow at <see cref="PanelStride"/> bytes.</summary>
        public byte* B;

        public long PanelStride;

        /// <summary>Quads of K to multiply (at least 1).</summary>
        public long Quads;

        public int* C;

        /// <summary>Bytes between rows of C.</summary>
        public long RowStride;
    }

    private static readonly delegate* unmanaged<Arguments*, void>[]? Kernels = Assemble();

    /// <summary>True when this CPU has AVX-512 with VNNI, the system let us place the kernels, and .NET has AVX-512 enabled.</summary>
    public static bool IsSupported => Kernels is not null;

    /// <summary>
    /// C tile (6 rows x 16 <paramref name="panels"/> columns at <see cref="Arguments.C"/>) = (accumulate ? C : 0) + A x B
    /// over <see cref="Arguments.Quads"/> quads of K.
    /// </summary>
    public static void Multiply(Arguments* arguments, int panels, bool accumulate) =>
        Kernels![(panels - 1) * 2 + (accumulate ? 1 : 0)](arguments);

    /// <summary>The CPU features the kernels use: AVX-512 F and BW (and the OS saving zmm state, which .NET checks) plus AVX512_VNNI.</summary>
    internal static bool CpuHasAvx512Vnni()
    {
        if (!Avx512F.IsSupported || !Avx512BW.IsSupported || !X86Base.IsSupported) return false;
        var (_, _, ecx, _) = X86Base.CpuId(7, 0);
        return (ecx & (1 << 11)) != 0;
    }

    private static delegate* unmanaged<Arguments*, void>[]? Assemble()
    {
        if (!OperatingSystem.IsLinux() || !Environment.Is64BitProcess || !CpuHasAvx512Vnni()) return null;
        if (Environment.GetEnvironmentVariable("QUANTIZE_DISABLE_JIT_KERNELS") == "1") return null;
        var code = new List<byte>();
        var offsets = new int[MaxPanels * 2];
        for (int panels = 1; panels <= MaxPanels; panels++)
        {
            foreach (bool accumulate in new[] { false, true })
            {
                while (code.Count % 64 != 0) code.Add(0xCC); // int3 between functions, each on a cache line
                offsets[(panels - 1) * 2 + (accumulate ? 1 : 0)] = code.Count;
                code.AddRange(Emit(panels, accumulate));
            }
        }
        byte* placed = ExecutableMemory.Place(code.ToArray());
        if (placed is null) return null;
        var kernels = new delegate* unmanaged<Arguments*, void>[offsets.Length];
        for (int i = 0; i < offsets.Length; i++) kernels[i] = (delegate* unmanaged<Arguments*, void>)(placed + offsets[i]);
        return kernels;
    }

    /// <summary>The machine code of the kernel for <paramref name="panels"/> panels (internal for the encoding tests).</summary>
    internal static byte[] Emit(int panels, bool accumulate)
    {
        var x = new X64Assembler();
        // Arguments (fields of 8 bytes): r8 = A, r9 = B, r10 = panel stride, r11 = quads, rcx = C, rdx = row stride.
        x.Move(Gpr.Rax, Gpr.Rdi);
        x.Load(Gpr.R8, new Memory(Gpr.Rax, Displacement: 0));
        x.Load(Gpr.R9, new Memory(Gpr.Rax, Displacement: 8));
        x.Load(Gpr.R10, new Memory(Gpr.Rax, Displacement: 16));
        x.Load(Gpr.R11, new Memory(Gpr.Rax, Displacement: 24));
        x.Load(Gpr.Rcx, new Memory(Gpr.Rax, Displacement: 32));
        x.Load(Gpr.Rdx, new Memory(Gpr.Rax, Displacement: 40));
        if (panels == 4) x.LoadAddress(Gpr.Rax, new Memory(Gpr.R10, Gpr.R10, 2)); // 3 x stride, for the fourth panel

        for (int r = 0; r < Rows; r++)
        {
            for (int p = 0; p < panels; p++) x.Xor(Accumulator(r, p), Accumulator(r, p), Accumulator(r, p));
        }

        int loop = x.Position;
        for (int p = 0; p < panels; p++) x.LoadVector(24 + p, Panel(p));
        for (int r = 0; r < Rows; r++)
        {
            int a = 28 + (r & 1); // two broadcast registers, so a row's broadcast need not wait for the previous row's products
            x.BroadcastInt32(a, new Memory(Gpr.R8, Displacement: 4 * r));
            for (int p = 0; p < panels; p++) x.DotProductUnsignedSigned(Accumulator(r, p), a, 24 + p);
        }
        x.Add(Gpr.R8, (sbyte)(4 * Rows));
        x.Add(Gpr.R9, (sbyte)64);
        x.Decrement(Gpr.R11);
        x.JumpIfNotZero(loop);

        // Rows 0..2 from rcx, rows 3..5 from rax = rcx + 3 x row stride.
        x.LoadAddress(Gpr.Rax, new Memory(Gpr.Rdx, Gpr.Rdx, 2));
        x.Add(Gpr.Rax, Gpr.Rcx);
        for (int r = 0; r < Rows; r++)
        {
            Gpr row = r < 3 ? Gpr.Rcx : Gpr.Rax;
            int step = r % 3;
            for (int p = 0; p < panels; p++)
            {
                var target = step == 0 ? new Memory(row, Displacement: 64 * p) : new Memory(row, Gpr.Rdx, step, 64 * p);
                if (accumulate) x.AddInt32(Accumulator(r, p), Accumulator(r, p), target);
                x.StoreVector(target, Accumulator(r, p));
            }
        }
        x.ZeroUpper();
        x.Return();
        return x.ToArray();
    }

    private static int Accumulator(int row, int panel) => 4 * row + panel;

    /// <summary>Panel p at the current quad: r9, r9 + stride, r9 + 2 x stride, r9 + 3 x stride (rax).</summary>
    private static Memory Panel(int p) => p switch
    {
        0 => new Memory(Gpr.R9),
        1 => new Memory(Gpr.R9, Gpr.R10, 1),
        2 => new Memory(Gpr.R9, Gpr.R10, 2),
        _ => new Memory(Gpr.R9, Gpr.Rax, 1),
    };
}
