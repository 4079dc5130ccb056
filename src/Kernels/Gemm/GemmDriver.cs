using System.Buffers;

namespace Quantize.Kernels.Gemm;

/// <summary>
/// A GEMM micro-kernel and its packing formats. The shared <see cref="GemmDriver{TKernel,TA,TB,TC}"/>
/// tiles K, then M, then N, and calls only these members; a kernel declares its register tile
/// (<see cref="Rows"/> x <see cref="Columns"/>), its K step, and how it lays out a block of A.
/// </summary>
/// <typeparam name="TA">Element of the packed A block.</typeparam>
/// <typeparam name="TB">Element of the packed B panels.</typeparam>
/// <typeparam name="TC">Accumulator / output element.</typeparam>
internal unsafe interface IGemmKernel<TA, TB, TC>
    where TA : unmanaged
    where TB : unmanaged
    where TC : unmanaged
{
    /// <summary>Rows of C one call computes (MR).</summary>
    static abstract int Rows { get; }

    /// <summary>Columns of C one call computes (NR): the width of a packed B panel.</summary>
    static abstract int Columns { get; }

    /// <summary>K values one packed step covers (1 for float, 2 for 16-bit pairs); K blocks start at multiples of it.</summary>
    static abstract int KStep { get; }

    /// <summary>K values per cache block (KC): a B panel slice of this depth stays in L1.</summary>
    static abstract int KBlock { get; }

    /// <summary>Rows per cache block of A (MC, a multiple of <see cref="Rows"/>): a packed A block stays in L2.</summary>
    static abstract int MBlock { get; }

    /// <summary>Elements of packed A for <see cref="Rows"/> rows and <paramref name="kc"/> K values.</summary>
    static abstract int PackedARowBlockLength(int kc);

    /// <summary>Elements of one B panel per step of <see cref="KStep"/> K values.</summary>
    static abstract int PanelStepLength { get; }

    /// <summary>Packs rows <c>[row, row + rows)</c> and K values <c>[k0, k0 + kc)</c> of A into <paramref name="packed"/>, zero-padding short row blocks.</summary>
    static abstract void PackA(in GemmA a, int row, int rows, int k0, int kc, TA* packed);

    /// <summary>
    /// C tile (<paramref name="rows"/> x <paramref name="columns"/>, at most MR x NR, row stride <paramref name="ldc"/>)
    /// = (accumulate ? C : 0) + packed A x packed B over <paramref name="kc"/> K values.
    /// </summary>
    static abstract void Multiply(TA* a, TB* b, int kc, TC* c, int ldc, bool accumulate, int rows, int columns);
}

/// <summary>The A operand of a GEMM, row-major, before packing; the kernel reads the view it understands.</summary>
internal readonly unsafe struct GemmA
{
    public GemmA(void* data, int rows, int depth, int zeroPoint = 0, bool signed = false)
    {
        Data = data;
        RowCount = rows;
        Depth = depth;
        ZeroPoint = zeroPoint;
        Signed = signed;
    }

    public void* Data { get; }
    public int RowCount { get; }
    public int Depth { get; }
    public int ZeroPoint { get; }

    /// <summary>For 8-bit A: true if the bytes are int8, false if uint8.</summary>
    public bool Signed { get; }
}

/// <summary>
/// The blocked GEMM loop nest shared by every element type, in the manner of gemmlowp and MLAS:
/// for each K block, for each M block (packed once), for each B panel, for each MR rows, one micro-kernel call.
/// Work is split over threads by B panels (or by M blocks when there are few panels); every element of C
/// is summed by one thread in the same order whatever the thread count, so results are identical.
/// </summary>
internal static unsafe class GemmDriver<TKernel, TA, TB, TC>
    where TKernel : IGemmKernel<TA, TB, TC>
    where TA : unmanaged
    where TB : unmanaged
    where TC : unmanaged
{
    /// <summary>
    /// C (M x N, row stride <paramref name="ldc"/>, default N) = A (M x K) x B (packed panels of <c>TKernel.Columns</c>,
    /// full depth K each). <paramref name="prepackedA"/>, when given, is A already laid out by <see cref="PrePackA"/>.
    /// <paramref name="shareRows"/> splits the threads' work by row blocks whenever there are enough of them (for callers that
    /// know the panels split unevenly: a 7 x 7 map is three panels and a one-pixel one).
    /// </summary>
    public static void Run(GemmA a, TB* packedB, int n, TC* c, int degreeOfParallelism, int ldc = 0, TA* prepackedA = null, bool shareRows = false)
    {
        if (ldc == 0) ldc = n;
        int m = a.RowCount;
        int k = a.Depth;
        if (m == 0 || n == 0) return;
        int panels = (n + TKernel.Columns - 1) / TKernel.Columns;
        int mBlocks = (m + TKernel.MBlock - 1) / TKernel.MBlock;
        int threads = Math.Max(1, degreeOfParallelism);

        if (threads == 1)
        {
            RunRange(a, packedB, n, c, 0, panels, 0, m, ldc, prepackedA);
            return;
        }

        bool splitPanels = mBlocks < threads || (!shareRows && panels >= 2 * threads);
        int parts = Math.Min(threads, splitPanels ? panels : mBlocks);
        nint aData = (nint)a.Data, bData = (nint)packedB, cData = (nint)c, prepacked = (nint)prepackedA;
        int rowsAsInt = m, depth = k, zeroPoint = a.ZeroPoint;
        bool signed = a.Signed;
        IntraOpThreads.For(parts, parts, part =>
        {
            var view = new GemmA((void*)aData, rowsAsInt, depth, zeroPoint, signed);
            if (splitPanels)
            {
                var (start, end) = Share(panels, parts, part);
                RunRange(view, (TB*)bData, n, (TC*)cData, start, end, 0, rowsAsInt, ldc, (TA*)prepacked);
            }
            else
            {
                var (start, end) = Share(mBlocks, parts, part);
                RunRange(view, (TB*)bData, n, (TC*)cData, 0, panels, start * TKernel.MBlock, Math.Min(rowsAsInt, end * TKernel.MBlock), ldc, (TA*)prepacked);
            }
        });
    }

    /// <summary>
    /// Rows per packed block of A: the kernel's MC, except that a short remainder is not given a block of its
    /// own (128 rows as 120 + 8 would stream every B panel twice for 8 rows): up to 2 x MC rows form one block.
    /// </summary>
    internal static int RowBlock(int rows)
    {
        int mr = TKernel.Rows;
        return rows <= 2 * TKernel.MBlock ? Math.Max(mr, (rows + mr - 1) / mr * mr) : TKernel.MBlock;
    }

    /// <summary>Part <paramref name="part"/> of <paramref name="count"/> items split into <paramref name="parts"/> contiguous shares.</summary>
    internal static (int Start, int End) Share(int count, int parts, int part) =>
        ((int)((long)count * part / parts), (int)((long)count * (part + 1) / parts));

    /// <summary>
    /// Packs all of A once, for a constant A used in many products (Conv weights): for each K block, every group
    /// of <c>TKernel.Rows</c> rows in turn, exactly as <see cref="RunRange"/> would pack them.
    /// </summary>
    public static TA[] PrePackA(GemmA a)
    {
        int k = a.Depth, m = a.RowCount, mr = TKernel.Rows, groups = (m + mr - 1) / mr;
        long total = 0;
        for (int k0 = 0; k0 < k; k0 += TKernel.KBlock) total += (long)groups * TKernel.PackedARowBlockLength(Math.Min(TKernel.KBlock, k - k0));
        var packed = new TA[total];
        fixed (TA* p = packed)
        {
            TA* block = p;
            for (int k0 = 0; k0 < k; k0 += TKernel.KBlock)
            {
                int kc = Math.Min(TKernel.KBlock, k - k0);
                for (int g = 0; g < groups; g++, block += TKernel.PackedARowBlockLength(kc))
                    TKernel.PackA(a, g * mr, Math.Min(mr, m - g * mr), k0, kc, block);
            }
        }
        return packed;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void RunRange(GemmA a, TB* packedB, int n, TC* c, int panelStart, int panelEnd, int rowStart, int rowEnd, int ldc, TA* prepackedA)
    {
        int k = a.Depth;
        int kStep = TKernel.KStep;
        int kSteps = (k + kStep - 1) / kStep;
        int kBlock = TKernel.KBlock;
        int mr = TKernel.Rows;
        int nr = TKernel.Columns;
        int mBlock = RowBlock(rowEnd - rowStart);
        int blockLength = TKernel.PackedARowBlockLength(Math.Min(kBlock, kSteps * kStep));
        int packedLength = (mBlock / mr) * blockLength;
        TA[] rented = ArrayPool<TA>.Shared.Rent(packedLength);
        try
        {
            fixed (TA* packedA = rented)
            {
                for (int k0 = 0; k0 < k; k0 += kBlock)
                {
                    int kc = Math.Min(kBlock, k - k0);
                    int aBlock = TKernel.PackedARowBlockLength(kc);
                    for (int row0 = rowStart; row0 < rowEnd; row0 += mBlock)
                    {
                        int mc = Math.Min(mBlock, rowEnd - row0);
                        TA* blockA = packedA;
                        if (prepackedA is not null)
                        {
                            // Whole K blocks before this one, then the row groups before row0 (row0 is a multiple of the row group).
                            int groups = (a.RowCount + mr - 1) / mr;
                            blockA = prepackedA + (long)(k0 / kBlock) * groups * TKernel.PackedARowBlockLength(kBlock) + (long)(row0 / mr) * aBlock;
                        }
                        else
                        {
                            for (int r = 0; r < mc; r += mr)
                                TKernel.PackA(a, row0 + r, Math.Min(mr, mc - r), k0, kc, packedA + (r / mr) * aBlock);
                        }

                        for (int panel = panelStart; panel < panelEnd; panel++)
                        {
                            TB* b = packedB + (long)panel * kSteps * TKernel.PanelStepLength + (long)(k0 / kStep) * TKernel.PanelStepLength;
                            int columns = Math.Min(nr, n - panel * nr);
                            for (int r = 0; r < mc; r += mr)
                            {
                                TC* tile = c + (long)(row0 + r) * ldc + panel * nr;
                                TKernel.Multiply(blockA + (r / mr) * aBlock, b, kc, tile, ldc, k0 > 0, Math.Min(mr, mc - r), columns);
                            }
                        }
                    }
                }
            }
        }
        finally
        {
            ArrayPool<TA>.Shared.Return(rented);
        }
    }
}
