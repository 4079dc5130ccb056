using Google.Protobuf;
using Quantize.Core.Running;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;

namespace Quantize.Core.Tests.Calibration;

/// <summary>The front ends' <c>--data DIR</c>: every calibration layout, and a folder of tensor files as one sample.</summary>
public sealed class SampleFoldersTests : IDisposable
{
    private static readonly ValueInfo[] Inputs =
        [new("ids", TensorElementType.Int64, [new(1, null), new(3, null)]), new("mask", TensorElementType.Int64, [new(1, null), new(3, null)])];

    private readonly string _folder = Directory.CreateTempSubdirectory("quantize-samples-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Npz_files_are_samples_in_name_order()
    {
        NumpyWriter.Npz(Path.Combine(_folder, "b.npz"), [("ids", NumpyWriter.NpyOf("<i8", [1, 3], new long[] { 4, 5, 6 })), ("mask", NumpyWriter.NpyOf("<i8", [1, 3], new long[] { 1, 1, 0 }))], compressed: true);
        NumpyWriter.Npz(Path.Combine(_folder, "a.npz"), [("ids", NumpyWriter.NpyOf("<i8", [1, 3], new long[] { 1, 2, 3 })), ("mask", NumpyWriter.NpyOf("<i8", [1, 3], new long[] { 1, 1, 1 }))], compressed: false);
        var samples = SampleFolders.Open(_folder, Inputs)().ToList();
        Assert.Equal(2, samples.Count);
        Assert.Equal([1L, 2, 3], samples[0]["ids"].ToArray<long>());
        Assert.Equal([1L, 1, 0], samples[1]["mask"].ToArray<long>());
    }

    [Fact]
    public void A_folder_of_tensor_files_is_one_sample()
    {
        foreach (var (name, values) in new[] { ("ids", new long[] { 7, 8, 9 }), ("mask", new long[] { 1, 0, 1 }) })
        {
            var tensor = new TensorProto { Name = name, DataType = 7 };
            tensor.Dims.AddRange([1, 3]);
            tensor.Int64Data.AddRange(values);
            File.WriteAllBytes(Path.Combine(_folder, name + ".pb"), tensor.ToByteArray());
        }
        var sample = Assert.Single(SampleFolders.Open(_folder, Inputs)());
        Assert.Equal([7L, 8, 9], sample["ids"].ToArray<long>());
    }

    [Fact]
    public void A_missing_folder_is_named()
    {
        string missing = Path.Combine(_folder, "nowhere");
        var error = Assert.Throws<DirectoryNotFoundException>(() => SampleFolders.Open(missing, Inputs));
        Assert.Contains(missing, error.Message, StringComparison.Ordinal);
    }
}
