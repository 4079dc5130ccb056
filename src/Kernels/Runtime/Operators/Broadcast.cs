namespace Quantize.Kernels.Runtime.Operators;

/// <summary>Numpy-style (multidirectional) broadcasting, as ONNX defines it.</summary>
internal static class Broadcast
{
    /// <summary>The broadcast shape of <paramref name="a"/> and <paramref name="b"/>.</summary>
    /// <exception cref="InvalidOperationException">The shapes cannot broadcast.</exception>
    public static int[] Shape(ReadOnlySpan<int> a, ReadOnlySpan<int> b, string node)
    {
        int rank = Math.Max(a.Length, b.Length);
        var result = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i < rank - a.Length ? 1 : a[i - (rank - a.Length)];
            int db = i < rank - b.Length ? 1 : b[i - (rank - b.Length)];
            if (da != db && da != 1 && db != 1)
                throw new InvalidOperationException($"{node}: shapes {Tensor.Format(a)} and {Tensor.Format(b)} cannot be broadcast.");
            result[i] = da == 1 ? db : da;
        }
        return result;
    }

    /// <summary>Element strides of <paramref name="shape"/> seen through the broadcast <paramref name="output"/> shape (0 where broadcast).</summary>
    public static int[] Strides(ReadOnlySpan<int> shape, ReadOnlySpan<int> output)
    {
        var strides = new int[output.Length];
        int stride = 1;
        for (int i = output.Length - 1; i >= 0; i--)
        {
            int j = i - (output.Length - shape.Length);
            int d = j >= 0 ? shape[j] : 1;
            strides[i] = d == 1 && output[i] != 1 ? 0 : stride;
            stride *= d;
        }
        return strides;
    }

    /// <summary>
    /// Visits the output in runs along the last axis: for each run, the start offsets into each input and
    /// whether each input advances along the run (stride 1) or repeats one element (stride 0).
    /// </summary>
    public static void ForEachRun(ReadOnlySpan<int> output, int[][] inputStrides, RunVisitor visit) =>
        ForEachRun(output, inputStrides, visit, 0, int.MaxValue);

    /// <summary>The number of runs <see cref="ForEachRun(ReadOnlySpan{int}, int[][], RunVisitor)"/> visits, and their length.</summary>
    public static (int Runs, int Length) RunShape(ReadOnlySpan<int> output, int[][] inputStrides)
    {
        int total = Tensor.CountElements(output);
        if (total == 0) return (0, 0);
        var (dims, _) = Collapse(output, inputStrides);
        int inner = dims.Length == 0 ? 1 : dims[^1];
        return (total / inner, inner);
    }

    /// <summary>Runs <c>[firstRun, endRun)</c> of <see cref="ForEachRun(ReadOnlySpan{int}, int[][], RunVisitor)"/>: one share of a parallel split.</summary>
    public static void ForEachRun(ReadOnlySpan<int> output, int[][] inputStrides, RunVisitor visit, int firstRun, int endRun)
    {
        int total = Tensor.CountElements(output);
        if (total == 0) return;
        var (dims, strides) = Collapse(output, inputStrides);
        int rank = dims.Length;
        if (rank == 0)
        {
            if (firstRun == 0 && endRun > 0) visit(0, 1, new int[inputStrides.Length], new bool[inputStrides.Length]);
            return;
        }
        int inner = dims[rank - 1];
        var advancing = strides.Select(s => s[rank - 1] != 0).ToArray();
        var offsets = new int[strides.Length];
        var index = new int[rank];
        for (int d = rank - 2, rest = firstRun; d >= 0; d--)
        {
            index[d] = rest % dims[d];
            rest /= dims[d];
        }
        long end = Math.Min((long)endRun * inner, total);
        for (int start = firstRun * inner; start < end; start += inner)
        {
            for (int i = 0; i < offsets.Length; i++)
            {
                int offset = 0;
                for (int d = 0; d < rank - 1; d++) offset += index[d] * strides[i][d];
                offsets[i] = offset;
            }
            visit(start, inner, offsets, advancing);
            for (int d = rank - 2; d >= 0; d--)
            {
                if (++index[d] < dims[d]) break;
                index[d] = 0;
            }
        }
    }

    /// <summary>
    /// Merges adjacent axes that every input walks the same way (all contiguous across the pair, or all
    /// broadcast), so runs are as long as possible: a [64, 1] + [64, 768] add becomes 64 runs, not 49,152.
    /// </summary>
    private static (int[] Dims, int[][] Strides) Collapse(ReadOnlySpan<int> output, int[][] inputStrides)
    {
        var dims = new List<int>();
        var strides = inputStrides.Select(_ => new List<int>()).ToArray();
        for (int d = 0; d < output.Length; d++)
        {
            if (output[d] == 1) continue; // size-1 axes move nothing
            if (dims.Count > 0)
            {
                int last = dims.Count - 1;
                bool mergeable = true;
                for (int i = 0; i < inputStrides.Length && mergeable; i++)
                {
                    int outer = strides[i][last], innerStride = inputStrides[i][d];
                    mergeable = (outer == 0 && innerStride == 0) || (innerStride != 0 && outer == innerStride * output[d]);
                }
                if (mergeable)
                {
                    dims[last] *= output[d];
                    for (int i = 0; i < inputStrides.Length; i++) strides[i][last] = inputStrides[i][d];
                    continue;
                }
            }
            dims.Add(output[d]);
            for (int i = 0; i < inputStrides.Length; i++) strides[i].Add(inputStrides[i][d]);
        }
        return (dims.ToArray(), strides.Select(s => s.ToArray()).ToArray());
    }

    public delegate void RunVisitor(int outputStart, int length, int[] inputOffsets, bool[] advancing);
}
