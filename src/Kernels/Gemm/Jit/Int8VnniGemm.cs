using System.Buffers;

namespace Quantize.Kernels.Gemm.Jit;

/// <summary>
/// The loop nest around <see cref="Int8VnniKernels"/>: like <see cref="GemmDriver{TKernel,TA,TB,TC}"/> (K blocks, then
/// M blocks with A packed once, then B), but a kernel call spans up to four 16-column panels, which lie a whole
/// panel apart in <see cref="PackedInt8Matrix"/>. Threads split the panel groups (or the M blocks when there are few);
/// every element of C is summed by one thread in the same order, so results are identical for any thread count.
/// </summary>
internal static unsafe class Int8VnniGemm
{
    /// <summary>K values per block: 4 panels x 256 quads x 64 bytes = 64 KiB of B per block, read from L2.</summary>
    internal const int KBlock = 1024;

    /// <summary>Rows per packed block of A.</summary>
    internal const int MBlock = 96;

    private const int Width = PackedInt8Matrix.PanelWidth;

    /// <summary>
    /// C (M x N, row stride N) = the output stage of A (8-bit, packed here by quads) x B (quad panels): int32 sums without
    /// zero points when <paramref name="terms"/> is null, else with its terms applied (int32 or float).
    /// </summary>
    public static void Run(GemmA a, byte* packedB, int n, int* c, int degreeOfParallelism, Int8VnniTerms? terms = null)
    {
        var empty = Array.Empty<int>();
        fixed (int* columnTerms = terms?.ColumnTerms ?? empty, zeroPoints = terms?.ColumnZeroPoints ?? empty, rowFactors = terms?.RowFactors ?? empty)
        fixed (float* scales = terms?.Scales ?? [], offsets = terms?.Offsets ?? [])
        {
            var pointers = new TermPointers(terms?.Stage ?? Int8VnniStage.Raw, terms?.HasZeroPointsB ?? false, columnTerms, zeroPoints, rowFactors, scales, offsets);
            Run(a, packedB, n, c, degreeOfParallelism, pointers);
        }
    }

    private static void Run(GemmA a, byte* packedB, int n, int* c, int degreeOfParallelism, TermPointers terms)
    {
        int m = a.RowCount;
        if (m == 0 || n == 0) return;
        int panels = (n + Width - 1) / Width;
        int groups = (panels + Int8VnniKernels.MaxPanels - 1) / Int8VnniKernels.MaxPanels;
        int mBlocks = (m + MBlock - 1) / MBlock;
        int threads = Math.Max(1, degreeOfParallelism);
        if (threads == 1)
        {
            RunRange(a, packedB, n, c, 0, groups, 0, m, terms);
            return;
        }
        bool splitGroups = groups >= 2 * threads || mBlocks < threads;
        int parts = Math.Min(threads, splitGroups ? groups : mBlocks);
        nint aData = (nint)a.Data, bData = (nint)packedB, cData = (nint)c;
        int depth = a.Depth, zeroPoint = a.ZeroPoint;
        bool signed = a.Signed;
        IntraOpThreads.For(parts, parts, part =>
        {
            var view = new GemmA((void*)aData, m, depth, zeroPoint, signed);
            if (splitGroups)
            {
                var (start, end) = GemmDriver<Int8QuadKernelAvx2, int, byte, int>.Share(groups, parts, part);
                RunRange(view, (byte*)bData, n, (int*)cData, start, end, 0, m, terms);
            }
            else
            {
                var (start, end) = GemmDriver<Int8QuadKernelAvx2, int, byte, int>.Share(mBlocks, parts, part);
                RunRange(view, (byte*)bData, n, (int*)cData, 0, groups, start * MBlock, Math.Min(m, end * MBlock), terms);
            }
        });
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void RunRange(GemmA a, byte* packedB, int n, int* c, int groupStart, int groupEnd, int rowStart, int rowEnd, TermPointers terms)
    {
        const int rows = Int8VnniKernels.Rows, maxPanels = Int8VnniKernels.MaxPanels;
        int k = a.Depth;
        long panelStride = (long)((k + 3) / 4) * 4 * Width;
        int panels = (n + Width - 1) / Width;
        int rowCount = rowEnd - rowStart;
        // As the generic driver: up to two blocks' worth of rows form one block (no block of a few rows streaming all of B).
        int mBlock = rowCount <= 2 * MBlock ? (rowCount + rows - 1) / rows * rows : MBlock;
        int blockLength = Int8QuadPacking.RowBlockLength(Math.Min(KBlock, k));
        // uint8 A whose rows are whole quads is read in place (the kernels broadcast a row's quad wherever it is); int8 A
        // (flipped to uint8) and ragged rows are packed.
        bool inPlace = !a.Signed && k % 4 == 0;
        int[] rented = ArrayPool<int>.Shared.Rent(inPlace ? 0 : mBlock / rows * blockLength);
        int* edge = stackalloc int[rows * maxPanels * Width];
        Int8VnniKernels.Arguments arguments = default;
        try
        {
            fixed (int* packedA = rented)
            {
                for (int k0 = 0; k0 < k; k0 += KBlock)
                {
                    int kc = Math.Min(KBlock, k - k0);
                    int aBlock = Int8QuadPacking.RowBlockLength(kc);
                    bool accumulate = k0 > 0;
                    var stage = k0 + kc >= k ? terms.Stage : Int8VnniStage.Raw;
                    arguments.SetQuads((kc + 3) / 4);
                    arguments.PanelStride = panelStride;
                    arguments.ARowStride = inPlace ? k : 4;
                    arguments.AQuadStride = inPlace ? 4 : 4 * rows;
                    arguments.ATileStride = inPlace ? (long)rows * k : (long)aBlock * sizeof(int);
                    for (int row0 = rowStart; row0 < rowEnd; row0 += mBlock)
                    {
                        int mc = Math.Min(mBlock, rowEnd - row0);
                        for (int r = 0; r < mc && !inPlace; r += rows)
                            Int8QuadPacking.PackA(a, row0 + r, Math.Min(rows, mc - r), k0, kc, packedA + r / rows * aBlock);

                        for (int group = groupStart; group < groupEnd; group++)
                        {
                            int panel = group * maxPanels;
                            int groupPanels = Math.Min(maxPanels, panels - panel);
                            int columns = Math.Min(groupPanels * Width, n - panel * Width);
                            arguments.B = packedB + panel * panelStride + (long)(k0 / 4) * 4 * Width;
                            if (stage != Int8VnniStage.Raw)
                            {
                                arguments.ColumnTerms = terms.ColumnTerms + panel * Width;
                                arguments.ColumnZeroPoints = terms.ColumnZeroPoints + panel * Width;
                                arguments.Scales = terms.Scales + (stage == Int8VnniStage.Float ? panel * Width : 0);
                                arguments.Offsets = terms.Offsets + (stage == Int8VnniStage.Float ? panel * Width : 0);
                            }
                            if (columns == groupPanels * Width)
                            {
                                arguments.RowStride = (long)n * sizeof(int);
                                arguments.CTileStride = rows * arguments.RowStride;
                                for (int r = 0, tileRows; r < mc; r += (int)arguments.Tiles * tileRows)
                                {
                                    // Every whole tile in one call (the kernel loops over them), then the rows left over as one tile.
                                    tileRows = Math.Min(rows, mc - r);
                                    arguments.Tiles = (mc - r) / tileRows;
                                    arguments.C = c + (long)(row0 + r) * n + panel * Width;
                                    arguments.A = inPlace ? (byte*)a.Data + (long)(row0 + r) * k + k0 : (byte*)(packedA + r / rows * aBlock);
                                    if (stage != Int8VnniStage.Raw) arguments.RowFactors = terms.RowFactors + row0 + r;
                                    Int8VnniKernels.Multiply(&arguments, tileRows, groupPanels, accumulate, stage, terms.HasZeroPointsB);
                                }
                                continue;
                            }
                            for (int r = 0; r < mc; r += rows)
                            {
                                // A tile short of columns goes through a scratch tile: the partial sums in, the stage's output out.
                                const int scratchWidth = maxPanels * Width;
                                int tileRows = Math.Min(rows, mc - r);
                                int* tile = c + (long)(row0 + r) * n + panel * Width;
                                if (accumulate)
                                {
                                    for (int i = 0; i < tileRows; i++)
                                        new ReadOnlySpan<int>(tile + (long)i * n, columns).CopyTo(new Span<int>(edge + i * scratchWidth, columns));
                                }
                                arguments.Tiles = 1;
                                arguments.C = edge;
                                arguments.RowStride = scratchWidth * sizeof(int);
                                arguments.A = inPlace ? (byte*)a.Data + (long)(row0 + r) * k + k0 : (byte*)(packedA + r / rows * aBlock);
                                if (stage != Int8VnniStage.Raw) arguments.RowFactors = terms.RowFactors + row0 + r;
                                Int8VnniKernels.Multiply(&arguments, tileRows, groupPanels, accumulate, stage, terms.HasZeroPointsB);
                                for (int i = 0; i < tileRows; i++)
                                    new ReadOnlySpan<int>(edge + i * scratchWidth, columns).CopyTo(new Span<int>(tile + (long)i * n, columns));
                            }
                        }
                    }
                }
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(rented);
        }
    }
}

/// <summary>
/// The output stage of <see cref="Int8VnniGemm"/>, applied by the kernel to the last K block: per column an integer term and
/// B's zero point, per row a factor of the zero points (<c>C = sums + term[j] + zB[j] x factor[i]</c>), then for
/// <see cref="Int8VnniStage.Float"/> <c>C = float(C) x scale[j] + offset[j]</c>. Arrays are padded to whole tiles
/// (columns to a multiple of 64, rows to a multiple of 6), their padding never stored.
/// </summary>
internal sealed class Int8VnniTerms
{
    public Int8VnniTerms(Int8VnniStage stage, Int8VnniColumns columns, int rows)
    {
        Stage = stage;
        Columns = columns;
        // Symmetric weights need no row factors: the kernels never read them.
        RowFactors = columns.HasZeroPointsB ? new int[(rows + Int8VnniKernels.Rows - 1) / Int8VnniKernels.Rows * Int8VnniKernels.Rows] : [];
        Scales = stage == Int8VnniStage.Float ? new float[columns.Terms.Length] : null;
        Offsets = stage == Int8VnniStage.Float ? new float[columns.Terms.Length] : null;
    }

    public Int8VnniStage Stage { get; }

    public Int8VnniColumns Columns { get; }

    /// <summary>False when every zero point of B is 0 (symmetric weights): the kernels skip the row factors.</summary>
    public bool HasZeroPointsB => Columns.HasZeroPointsB;

    public int[] ColumnTerms => Columns.Terms;

    public int[] ColumnZeroPoints => Columns.ZeroPoints;

    public int[] RowFactors { get; }

    public float[]? Scales { get; }

    public float[]? Offsets { get; }
}

/// <summary>
/// The per-column half of <see cref="Int8VnniTerms"/> for one matrix and one zero point of A (as the kernels see it, int8 A
/// flipped): read-only once made, so <see cref="PackedInt8Matrix"/> keeps it for the next call with the same zero point.
/// </summary>
internal sealed class Int8VnniColumns(int zeroPointA, int[] terms, int[] zeroPoints, bool hasZeroPointsB)
{
    /// <summary>The zero point of A the terms are for.</summary>
    public int ZeroPointA { get; } = zeroPointA;

    /// <summary>Per column, padded to a multiple of 64: the integer term added to every row.</summary>
    public int[] Terms { get; } = terms;

    /// <summary>Per column, padded to a multiple of 64: B's stored zero point.</summary>
    public int[] ZeroPoints { get; } = zeroPoints;

    public bool HasZeroPointsB { get; } = hasZeroPointsB;

    /// <summary>The padded length for <paramref name="columns"/> columns.</summary>
    public static int PaddedLength(int columns) => (columns + 63) / 64 * 64;
}

/// <summary>The pinned addresses of an <see cref="Int8VnniTerms"/>, for the threads.</summary>
internal readonly unsafe struct TermPointers(Int8VnniStage stage, bool hasZeroPointsB, int* columnTerms, int* columnZeroPoints, int* rowFactors, float* scales, float* offsets)
{
    public Int8VnniStage Stage { get; } = stage;

    public bool HasZeroPointsB { get; } = hasZeroPointsB;

    public int* ColumnTerms { get; } = columnTerms;

    public int* ColumnZeroPoints { get; } = columnZeroPoints;

    public int* RowFactors { get; } = rowFactors;

    public float* Scales { get; } = scales;

    public float* Offsets { get; } = offsets;
}
