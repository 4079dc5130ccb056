using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// The one loop behind Transpose, Slice, Expand, Tile and Pad: for every index <c>i</c> of a shape,
/// <c>dst[dstOffset + i·dstStrides] = src[srcOffset + i·srcStrides]</c>. Strides may be 0 (broadcast) or
/// negative (reversed slices). Axes that both sides walk contiguously are merged first, so the inner loop
/// is usually one block copy or fill.
/// </summary>
internal static class StridedCopy
{
    /// <summary>Side of the square tiles a transposing copy moves at a time: 16 x 16 words stay in L1.</summary>
    private const int Tile = 16;

    public static void Run<T>(ReadOnlySpan<T> src, int srcOffset, ReadOnlySpan<int> srcStrides,
        Span<T> dst, int dstOffset, ReadOnlySpan<int> dstStrides, ReadOnlySpan<int> shape)
    {
        int rank = shape.Length;
        Span<int> dims = rank <= 12 ? stackalloc int[12] : new int[rank];
        Span<int> ss = rank <= 12 ? stackalloc int[12] : new int[rank];
        Span<int> ds = rank <= 12 ? stackalloc int[12] : new int[rank];
        int n = Collapse(srcStrides, dstStrides, shape, dims, ss, ds);
        if (n < 0) return; // empty
        if (n == 0)
        {
            dst[dstOffset] = src[srcOffset];
            return;
        }
        Copy(src, srcOffset, dst, dstOffset, dims[..n], ss[..n], ds[..n]);
    }

    /// <summary>
    /// <see cref="Run{T}(ReadOnlySpan{T}, int, ReadOnlySpan{int}, Span{T}, int, ReadOnlySpan{int}, ReadOnlySpan{int})"/> over whole tensors,
    /// with the outermost (merged) axis split over <paramref name="threads"/>: every element is one move, wherever it is done.
    /// </summary>
    public static void Run<T>(Tensor src, int[] srcStrides, Tensor dst, int[] dstStrides, int[] shape, int threads)
    {
        int rank = shape.Length;
        var dims = new int[Math.Max(rank, 1)];
        var ss = new int[dims.Length];
        var ds = new int[dims.Length];
        int n = Collapse(srcStrides, dstStrides, shape, dims, ss, ds);
        long inner = n <= 1 ? 0 : Tensor.CountElements(dims.AsSpan(1, n - 1));
        if (n <= 1 || ParallelRanges.Parts(dims[0], inner, threads) <= 1)
        {
            Run<T>(Elements.Span<T>(src), 0, srcStrides, Elements.Span<T>(dst), 0, dstStrides, shape);
            return;
        }
        ParallelRanges.For(dims[0], inner, threads, (start, end) =>
        {
            var share = dims[..n];
            share[0] = end - start;
            Copy<T>(Elements.Span<T>(src), start * ss[0], Elements.Span<T>(dst), start * ds[0], share, ss.AsSpan(0, n), ds.AsSpan(0, n));
        });
    }

    /// <summary>The copy over already merged axes.</summary>
    private static void Copy<T>(ReadOnlySpan<T> src, int srcOffset, Span<T> dst, int dstOffset, ReadOnlySpan<int> dims, ReadOnlySpan<int> ss, ReadOnlySpan<int> ds)
    {
        int n = dims.Length;

        // A transpose: the destination walks the last axis contiguously, the source walks another axis
        // contiguously. Element-by-element rows would read the source with a large stride; tiles read
        // and write whole cache lines. (A broadcast last axis is a fill: rows do it best.)
        if (ds[n - 1] == 1 && ss[n - 1] is not (1 or 0) && n >= 2)
        {
            int p = -1;
            for (int d = 0; d < n - 1; d++)
            {
                if (ss[d] == 1) p = d;
            }
            if (p >= 0 && dims[p] >= Tile && dims[n - 1] >= Tile)
            {
                Transposing(src, srcOffset, dst, dstOffset, dims, ss, ds, p);
                return;
            }
        }
        Rows(src, srcOffset, dst, dstOffset, dims, ss, ds);
    }

    /// <summary>The plain loop (the reference for the tiled one): rows along the last axis.</summary>
    internal static void Rows<T>(ReadOnlySpan<T> src, int srcOffset, Span<T> dst, int dstOffset,
        ReadOnlySpan<int> dims, ReadOnlySpan<int> ss, ReadOnlySpan<int> ds)
    {
        int n = dims.Length;
        int inner = dims[n - 1], si = ss[n - 1], di = ds[n - 1];
        Span<int> index = n <= 12 ? stackalloc int[12] : new int[n];
        index.Clear();
        int s = srcOffset, t = dstOffset;
        while (true)
        {
            Row(src, s, si, dst, t, di, inner);
            int d = n - 2;
            for (; d >= 0; d--)
            {
                s += ss[d];
                t += ds[d];
                if (++index[d] < dims[d]) break;
                s -= ss[d] * dims[d];
                t -= ds[d] * dims[d];
                index[d] = 0;
            }
            if (d < 0) return;
        }
    }

    private static void Row<T>(ReadOnlySpan<T> src, int s, int si, Span<T> dst, int t, int di, int count)
    {
        if (si == 1 && di == 1)
        {
            src.Slice(s, count).CopyTo(dst.Slice(t, count));
        }
        else if (si == 0 && di == 1)
        {
            dst.Slice(t, count).Fill(src[s]);
        }
        else
        {
            for (int k = 0; k < count; k++) dst[t + k * di] = src[s + k * si];
        }
    }

    /// <summary>
    /// Axis <paramref name="p"/> is contiguous in the source, the last axis in the destination: every
    /// (p, last) plane is copied in square tiles; the other axes are walked around the planes.
    /// </summary>
    private static void Transposing<T>(ReadOnlySpan<T> src, int srcOffset, Span<T> dst, int dstOffset,
        ReadOnlySpan<int> dims, ReadOnlySpan<int> ss, ReadOnlySpan<int> ds, int p)
    {
        int n = dims.Length;
        int rows = dims[p], cols = dims[n - 1];
        int rowDst = ds[p], colSrc = ss[n - 1];
        Span<int> index = n <= 12 ? stackalloc int[12] : new int[n];
        index.Clear();
        int s = srcOffset, t = dstOffset;
        while (true)
        {
            for (int r0 = 0; r0 < rows; r0 += Tile)
            {
                int r1 = Math.Min(r0 + Tile, rows);
                for (int c0 = 0; c0 < cols; c0 += Tile)
                {
                    int c1 = Math.Min(c0 + Tile, cols);
                    // Indices are linear in r and c, so the tile's four corners bound them: checked here, the moves skip the checks.
                    _ = src[s + r0 + c0 * colSrc]; _ = src[s + r0 + (c1 - 1) * colSrc]; _ = src[s + (r1 - 1) + c0 * colSrc]; _ = src[s + (r1 - 1) + (c1 - 1) * colSrc];
                    _ = dst[t + r0 * rowDst + c0]; _ = dst[t + r0 * rowDst + c1 - 1]; _ = dst[t + (r1 - 1) * rowDst + c0]; _ = dst[t + (r1 - 1) * rowDst + c1 - 1];
                    ref T from = ref MemoryMarshal.GetReference(src);
                    ref T to = ref MemoryMarshal.GetReference(dst);
                    for (int r = r0; r < r1; r++)
                    {
                        int sr = s + r, tr = t + r * rowDst;
                        for (int c = c0; c < c1; c++) Unsafe.Add(ref to, tr + c) = Unsafe.Add(ref from, sr + c * colSrc);
                    }
                }
            }
            // Next plane: advance the axes other than p and the last one.
            int d = n - 2;
            for (; d >= 0; d--)
            {
                if (d == p) continue;
                s += ss[d];
                t += ds[d];
                if (++index[d] < dims[d]) break;
                s -= ss[d] * dims[d];
                t -= ds[d] * dims[d];
                index[d] = 0;
            }
            if (d < 0) return;
        }
    }

    /// <summary>
    /// Drops size-1 axes and merges neighbours both sides walk as one; returns the merged rank, or -1
    /// when the shape is empty.
    /// </summary>
    internal static int Collapse(ReadOnlySpan<int> srcStrides, ReadOnlySpan<int> dstStrides, ReadOnlySpan<int> shape,
        Span<int> dims, Span<int> ss, Span<int> ds)
    {
        int n = 0;
        for (int d = 0; d < shape.Length; d++)
        {
            if (shape[d] == 0) return -1;
        }
        for (int d = 0; d < shape.Length; d++)
        {
            int size = shape[d];
            if (size == 1) continue;
            if (n > 0 && ss[n - 1] == srcStrides[d] * size && ds[n - 1] == dstStrides[d] * size)
            {
                dims[n - 1] *= size;
                ss[n - 1] = srcStrides[d];
                ds[n - 1] = dstStrides[d];
                continue;
            }
            dims[n] = size;
            ss[n] = srcStrides[d];
            ds[n] = dstStrides[d];
            n++;
        }
        return n;
    }
}
