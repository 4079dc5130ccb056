namespace Quantize.Kernels;

/// <summary>
/// Splits a range of independent items (elements, rows, runs, batches) into contiguous shares over threads, for the
/// operators outside the GEMMs. Each item is computed by the same code whichever share it falls in, so results do not
/// depend on the thread count; element ranges split at multiples of 64 so vector loops see the same alignment.
/// </summary>
internal static class ParallelRanges
{
    /// <summary>Below about this many elements of work per thread, a thread's start-up costs more than it saves.</summary>
    public const long MinimumWorkPerThread = 1 << 14;

    /// <summary>Element ranges split at multiples of this (a 512-bit vector of bytes; 8 vectors of floats).</summary>
    public const int ElementAlignment = 64;

    /// <summary>Runs <paramref name="body"/>(start, end) over shares of <c>[0, count)</c>, each item costing about <paramref name="workPerItem"/> elements.</summary>
    public static void For(int count, long workPerItem, int threads, Action<int, int> body)
    {
        int parts = Parts(count, workPerItem, threads);
        if (parts <= 1)
        {
            body(0, count);
            return;
        }
        IntraOpThreads.For(parts, parts, part =>
        {
            int start = (int)((long)count * part / parts), end = (int)((long)count * (part + 1) / parts);
            body(start, end);
        });
    }

    /// <summary>Runs <paramref name="body"/>(start, end) over shares of <c>[0, length)</c> elements, split at multiples of <see cref="ElementAlignment"/>.</summary>
    public static void ForElements(int length, int threads, Action<int, int> body)
    {
        int blocks = (length + ElementAlignment - 1) / ElementAlignment;
        For(blocks, ElementAlignment, threads, (start, end) => body(start * ElementAlignment, Math.Min(length, end * ElementAlignment)));
    }

    /// <summary>How many shares <see cref="For"/> makes.</summary>
    public static int Parts(int count, long workPerItem, int threads)
    {
        if (threads <= 1 || count <= 1) return 1;
        long work = count * Math.Max(1, workPerItem);
        return (int)Math.Min(Math.Min(threads, count), Math.Max(1, work / MinimumWorkPerThread));
    }
}
