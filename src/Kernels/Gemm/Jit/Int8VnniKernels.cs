using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Quantize.Kernels.Gemm.Jit;

/// <summary>What a kernel call does with its sums after the last K block.</summary>
internal enum Int8VnniStage
{
    /// <summary>Store (or add to C) the raw int32 sums: a K block before the last.</summary>
    Raw = 0,

    /// <summary>Add the zero-point terms (<c>column term[j] + zB[j] x row factor[i]</c>) and store int32 (MatMulInteger).</summary>
    Int32 = 1,

    /// <summary>Add the zero-point terms, convert to float, multiply by the column scale and add the column offset (dynamic quantization).</summary>
    Float = 2,
}

/// <summary>
/// The int8 quad micro-kernels for AVX-512 VNNI, assembled at first use: a tile of 1 to 6 rows x 16, 32, 48 or 64 columns
/// (one to four 16-column panels of <see cref="PackedInt8Matrix"/>'s quad layout), one <c>vpdpbusd</c> per row and
/// panel per quad of K: 64 exact u8 x s8 multiply-adds an instruction, against 32 for three instructions on AVX2.
/// The output stage of the last K block runs on the tile while it is in registers (<see cref="Int8VnniStage"/>), with
/// the same integer additions and float multiply, then add, as <see cref="Int8OutputStage"/>.
/// <para>
/// Registers: zmm0..23 accumulate (row r, panel p in zmm(4r + p)), zmm24..27 hold a quad of the panels, zmm28/29 a
/// broadcast quad of A. Arguments come in one struct (<see cref="Arguments"/>), its address in rdi (System V ABI);
/// the tile loop keeps its state in callee-saved registers, which it pushes and pops.
/// </para>
/// </summary>
internal static unsafe class Int8VnniKernels
{
    /// <summary>Rows of a tile (the quad packing of A).</summary>
    public const int Rows = Int8QuadPacking.Rows;

    /// <summary>Panels one call covers at most.</summary>
    public const int MaxPanels = 4;

    /// <summary>What one kernel call reads: packed A and B at the K block, the tile of C, the output stage's terms at the tile.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Arguments
    {
        /// <summary>Row 0 of A at this K block: uint8 quads, row r at <see cref="ARowStride"/> x r bytes, quad q at <see cref="AQuadStride"/> x q.</summary>
        public byte* A;

        /// <summary>The first panel at this K block; the next panels follow at <see cref="PanelStride"/> bytes.</summary>
        public byte* B;

        public long PanelStride;

        /// <summary>Quads of K to multiply before the C tile is prefetched (see <see cref="SetQuads"/>); may be 0.</summary>
        public long QuadsBeforeC;

        /// <summary>Quads of K to multiply after it (at least 1).</summary>
        public long QuadsAfterC;

        /// <summary>The tile: int32 sums, or floats after <see cref="Int8VnniStage.Float"/> (partial sums of earlier K blocks are int32).</summary>
        public int* C;

        /// <summary>Bytes between rows of C.</summary>
        public long RowStride;

        /// <summary>Per column of the tile: the integer term added to every row.</summary>
        public int* ColumnTerms;

        /// <summary>Per column of the tile: B's zero point, multiplied by the row factor.</summary>
        public int* ColumnZeroPoints;

        /// <summary>Per row of the tile (six): the factor of the zero points.</summary>
        public int* RowFactors;

        /// <summary>Per column (float stage): the scale.</summary>
        public float* Scales;

        /// <summary>Per column (float stage): the offset (bias) added last.</summary>
        public float* Offsets;

        /// <summary>Bytes between rows of A: 4 when packed (<see cref="Int8QuadPacking"/>), K when read in place.</summary>
        public long ARowStride;

        /// <summary>Bytes between quads of a row of A: 24 when packed, 4 in place.</summary>
        public long AQuadStride;

        /// <summary>Row tiles to run, one below the other (at least 1): A, C and the row factors advance after each.</summary>
        public long Tiles;

        /// <summary>Bytes from one row tile of A to the next.</summary>
        public long ATileStride;

        /// <summary>Bytes from one row tile of C to the next.</summary>
        public long CTileStride;

        /// <summary>
        /// Sets the quads of K to multiply (at least 1): all but the last <see cref="CPrefetchQuads"/> of them before the
        /// C tile is prefetched.
        /// </summary>
        public void SetQuads(long quads)
        {
            QuadsAfterC = Math.Min(quads, CPrefetchQuads);
            QuadsBeforeC = quads - QuadsAfterC;
        }
    }

    /// <summary>
    /// How many quads before the end of a tile's products its C lines are prefetched for writing (a few hundred
    /// nanoseconds): early enough for them to arrive from L3 or memory, late enough not to meet the B stream at the tile's
    /// start or be pushed out of L1 by it. In-process against prefetching at the tile's start: 1.5% on 512 x 768 x 3072,
    /// about 0.5% on the 128-row shapes; 16 to 96 quads all did about as well, and not prefetching C at all was 1.5%
    /// slower than the tile's start.
    /// </summary>
    public const int CPrefetchQuads = 32;

    /// <summary>Raw, then Int32 and Float each without and with B's zero points (symmetric weights need no row factors).</summary>
    private const int Stages = 5;

    /// <summary>
    /// Bytes ahead of the current quad at which each panel is prefetched (eight quads): B arrives from L3 for a group's
    /// first row tile. Measured in one BenchmarkDotNet session: 512 x 768 x 3072 about 5% faster than none, 256 and 1024
    /// no better, the 128-row shapes unchanged.
    /// </summary>
    private const int PrefetchDistance = 512;

    private static readonly delegate* unmanaged<Arguments*, void>[]? Kernels = TryAssemble();

    /// <summary>True when this CPU has AVX-512 with VNNI, the system let us place the kernels, and .NET has AVX-512 enabled.</summary>
    public static bool IsSupported => Kernels is not null;

    /// <summary>
    /// For each of <see cref="Arguments.Tiles"/> row tiles: C tile (<paramref name="rows"/> rows x 16 <paramref name="panels"/>
    /// columns at <see cref="Arguments.C"/>) = stage((accumulate ? C : 0) + A x B) over the quads of K (<see cref="Arguments.SetQuads"/>).
    /// </summary>
    public static void Multiply(Arguments* arguments, int rows, int panels, bool accumulate, Int8VnniStage stage, bool zeroPointsB) =>
        Kernels![Index(rows, panels, accumulate, StageCode(stage, zeroPointsB))](arguments);

    /// <summary>The CPU features the kernels use: AVX-512 F and BW (and the OS saving zmm state, which .NET checks) plus AVX512_VNNI.</summary>
    internal static bool CpuHasAvx512Vnni()
    {
        if (!Avx512F.IsSupported || !Avx512BW.IsSupported || !X86Base.IsSupported) return false;
        var (_, _, ecx, _) = X86Base.CpuId(7, 0);
        return (ecx & (1 << 11)) != 0;
    }

    private static int StageCode(Int8VnniStage stage, bool zeroPointsB) => stage == Int8VnniStage.Raw ? 0 : (int)stage * 2 - 1 + (zeroPointsB ? 1 : 0);

    private static int Index(int rows, int panels, bool accumulate, int stageCode) =>
        ((stageCode * Rows + rows - 1) * MaxPanels + panels - 1) * 2 + (accumulate ? 1 : 0);

    /// <summary>The kernels, or null (and the AVX2 kernels run) when anything stands in the way, such as a C library without mmap.</summary>
    private static delegate* unmanaged<Arguments*, void>[]? TryAssemble()
    {
        try
        {
            return Assemble();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or MarshalDirectiveException)
        {
            return null;
        }
    }

    private static delegate* unmanaged<Arguments*, void>[]? Assemble()
    {
        if (!OperatingSystem.IsLinux() || !Environment.Is64BitProcess || !CpuHasAvx512Vnni()) return null;
        if (Environment.GetEnvironmentVariable("QUANTIZE_DISABLE_JIT_KERNELS") == "1") return null;
        var machineCode = new List<byte>();
        var offsets = new int[Stages * Rows * MaxPanels * 2];
        for (int code = 0; code < Stages; code++)
        {
            var stage = code == 0 ? Int8VnniStage.Raw : (Int8VnniStage)((code + 1) / 2);
            bool zeroPointsB = code is 2 or 4;
            for (int rows = 1; rows <= Rows; rows++)
            {
                for (int panels = 1; panels <= MaxPanels; panels++)
                {
                    foreach (bool accumulate in new[] { false, true })
                    {
                        while (machineCode.Count % 64 != 0) machineCode.Add(0xCC); // int3 between functions, each on a cache line
                        offsets[Index(rows, panels, accumulate, code)] = machineCode.Count;
                        machineCode.AddRange(Emit(rows, panels, accumulate, stage, zeroPointsB));
                    }
                }
            }
        }
        byte* placed = ExecutableMemory.Place(machineCode.ToArray());
        if (placed is null) return null;
        var kernels = new delegate* unmanaged<Arguments*, void>[offsets.Length];
        for (int i = 0; i < offsets.Length; i++) kernels[i] = (delegate* unmanaged<Arguments*, void>)(placed + offsets[i]);
        return kernels;
    }

    /// <summary>
    /// The machine code of one kernel: <see cref="Arguments.Tiles"/> tiles of the first <paramref name="rows"/> rows of a
    /// tile each (internal for the tests). Looping over the row tiles here rather than calling once per tile keeps the
    /// group of panels hot in L1 and saves a call, a struct fill and the register set-up per tile.
    /// </summary>
    internal static byte[] Emit(int rows, int panels, bool accumulate, Int8VnniStage stage, bool zeroPointsB)
    {
        var x = new X64Assembler();
        // Across tiles (callee-saved, so pushed): r12 = A's tile, r13 = C's tile, r14 = tiles left, r15 = the tile's row
        // factors, rbx / rbp = the A / C tile strides.
        Gpr[] saved = [Gpr.Rbx, Gpr.Rbp, Gpr.R12, Gpr.R13, Gpr.R14, Gpr.R15];
        foreach (var register in saved) x.Push(register);
        x.Load(Gpr.R12, Field(nameof(Arguments.A)));
        x.Load(Gpr.R13, Field(nameof(Arguments.C)));
        x.Load(Gpr.R14, Field(nameof(Arguments.Tiles)));
        x.Load(Gpr.R15, Field(nameof(Arguments.RowFactors)));
        x.Load(Gpr.Rbx, Field(nameof(Arguments.ATileStride)));
        x.Load(Gpr.Rbp, Field(nameof(Arguments.CTileStride)));

        int tile = x.Position;
        // Per tile: r8 = A's row 0, rcx = its row 3, rsi = A's row stride, rdx = its quad stride, r9 = B, r10 = panel
        // stride, r11 = quads (the output stage reuses them, so they are reloaded).
        x.Move(Gpr.R8, Gpr.R12);
        x.Load(Gpr.R9, Field(nameof(Arguments.B)));
        x.Load(Gpr.R10, Field(nameof(Arguments.PanelStride)));
        x.Load(Gpr.Rsi, Field(nameof(Arguments.ARowStride)));
        x.Load(Gpr.Rdx, Field(nameof(Arguments.AQuadStride)));
        x.LoadAddress(Gpr.Rcx, new Memory(Gpr.Rsi, Gpr.Rsi, 2));
        x.Add(Gpr.Rcx, Gpr.R8);
        if (panels == 4) x.LoadAddress(Gpr.Rax, new Memory(Gpr.R10, Gpr.R10, 2)); // 3 x stride, for the fourth panel

        for (int r = 0; r < rows; r++)
        {
            for (int p = 0; p < panels; p++) x.Xor(Accumulator(r, p), Accumulator(r, p), Accumulator(r, p));
        }

        x.Load(Gpr.R11, Field(nameof(Arguments.QuadsBeforeC)));
        x.Test(Gpr.R11, Gpr.R11);
        int skip = x.JumpIfZeroForward();
        EmitQuadLoop(x, rows, panels);
        x.SetJumpTarget(skip);

        // The tile of C, fetched writable before the last quads (CPrefetchQuads) so that the output stage's stores and
        // adds find it in cache rather than wait on L3 or memory. rdx and rax are the loop's: kept on the stack meanwhile.
        x.Push(Gpr.Rdx);
        x.Push(Gpr.Rax);
        x.Load(Gpr.Rdx, Field(nameof(Arguments.RowStride)));
        x.LoadAddress(Gpr.Rax, new Memory(Gpr.Rdx, Gpr.Rdx, 2));
        x.Add(Gpr.Rax, Gpr.R13);
        for (int r = 0; r < rows; r++)
        {
            for (int p = 0; p < panels; p++) x.PrefetchForWrite(TileOfC(r, Gpr.R13, p));
        }
        x.Pop(Gpr.Rax);
        x.Pop(Gpr.Rdx);
        x.Load(Gpr.R11, Field(nameof(Arguments.QuadsAfterC)));
        EmitQuadLoop(x, rows, panels);

        x.Move(Gpr.Rcx, Gpr.R13);
        x.Load(Gpr.Rdx, Field(nameof(Arguments.RowStride)));
        if (stage != Int8VnniStage.Raw)
        {
            // The terms, now that A and B are done with: r8 = column terms, r9 = zero points, r10 = row factors,
            // r11 = scales, rsi = offsets.
            x.Load(Gpr.R8, Field(nameof(Arguments.ColumnTerms)));
            x.Load(Gpr.R9, Field(nameof(Arguments.ColumnZeroPoints)));
            x.Move(Gpr.R10, Gpr.R15);
            x.Load(Gpr.R11, Field(nameof(Arguments.Scales)));
            x.Load(Gpr.Rsi, Field(nameof(Arguments.Offsets)));
        }

        // Rows 0..2 from rcx, rows 3..5 from rax = rcx + 3 x row stride.
        x.LoadAddress(Gpr.Rax, new Memory(Gpr.Rdx, Gpr.Rdx, 2));
        x.Add(Gpr.Rax, Gpr.Rcx);
        for (int r = 0; r < rows; r++)
        {
            if (zeroPointsB) x.BroadcastInt32(24, new Memory(Gpr.R10, Displacement: 4 * r));
            for (int p = 0; p < panels; p++)
            {
                int c = Accumulator(r, p);
                var target = TileOfC(r, Gpr.Rcx, p);
                if (accumulate) x.AddInt32(c, c, target);
                if (stage != Int8VnniStage.Raw)
                {
                    x.AddInt32(c, c, new Memory(Gpr.R8, Displacement: 64 * p));
                    if (zeroPointsB)
                    {
                        x.MultiplyInt32(25, 24, new Memory(Gpr.R9, Displacement: 64 * p));
                        x.AddInt32(c, c, 25);
                    }
                }
                if (stage == Int8VnniStage.Float)
                {
                    x.ConvertToSingle(c, c);
                    x.MultiplySingle(c, c, new Memory(Gpr.R11, Displacement: 64 * p));
                    x.AddSingle(c, c, new Memory(Gpr.Rsi, Displacement: 64 * p));
                }
                x.StoreVector(target, c);
            }
        }

        x.Add(Gpr.R12, Gpr.Rbx);
        x.Add(Gpr.R13, Gpr.Rbp);
        x.Add(Gpr.R15, (sbyte)(4 * Rows));
        x.Decrement(Gpr.R14);
        x.JumpIfNotZero(tile);

        for (int i = saved.Length - 1; i >= 0; i--) x.Pop(saved[i]);
        x.ZeroUpper();
        x.Return();
        return x.ToArray();
    }

    /// <summary>
    /// r11 quads (at least 1) of the tile's products: per quad, the panels' vectors, a prefetch of each panel eight quads
    /// ahead, then per row a broadcast quad of A and one <c>vpdpbusd</c> per panel.
    /// </summary>
    private static void EmitQuadLoop(X64Assembler x, int rows, int panels)
    {
        int loop = x.Position;
        for (int p = 0; p < panels; p++) x.LoadVector(24 + p, Panel(p));
        for (int p = 0; p < panels; p++) x.Prefetch(Panel(p) with { Displacement = PrefetchDistance });
        for (int r = 0; r < rows; r++)
        {
            int a = 28 + (r & 1); // two broadcast registers, so a row's broadcast need not wait for the previous row's products
            x.BroadcastInt32(a, RowOfA(r));
            for (int p = 0; p < panels; p++) x.DotProductUnsignedSigned(Accumulator(r, p), a, 24 + p);
        }
        x.Add(Gpr.R8, Gpr.Rdx);
        x.Add(Gpr.Rcx, Gpr.Rdx);
        x.Add(Gpr.R9, (sbyte)64);
        x.Decrement(Gpr.R11);
        x.JumpIfNotZero(loop);
    }

    private static int Accumulator(int row, int panel) => 4 * row + panel;

    /// <summary>Row r, panel p of the C tile at <paramref name="tile"/>: rows 3..5 from rax = tile + 3 x row stride (rdx).</summary>
    private static Memory TileOfC(int r, Gpr tile, int p) => (r % 3) switch
    {
        0 => new Memory(r < 3 ? tile : Gpr.Rax, Displacement: 64 * p),
        var step => new Memory(r < 3 ? tile : Gpr.Rax, Gpr.Rdx, step, 64 * p),
    };

    /// <summary>A field of the arguments, at rdi.</summary>
    private static Memory Field(string name) => new(Gpr.Rdi, Displacement: (int)Marshal.OffsetOf<Arguments>(name));

    /// <summary>Row r of A at the current quad: r8, r8 + stride, r8 + 2 x stride, then the same from rcx (row 3).</summary>
    private static Memory RowOfA(int r) => (r % 3) switch
    {
        0 => new Memory(r < 3 ? Gpr.R8 : Gpr.Rcx),
        var step => new Memory(r < 3 ? Gpr.R8 : Gpr.Rcx, Gpr.Rsi, step),
    };

    /// <summary>Panel p at the current quad: r9, r9 + stride, r9 + 2 x stride, r9 + 3 x stride (rax).</summary>
    private static Memory Panel(int p) => p switch
    {
        0 => new Memory(Gpr.R9),
        1 => new Memory(Gpr.R9, Gpr.R10, 1),
        2 => new Memory(Gpr.R9, Gpr.R10, 2),
        _ => new Memory(Gpr.R9, Gpr.Rax, 1),
    };
}
