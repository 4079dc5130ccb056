using Google.Protobuf;
using Quantize.Core.Calibration;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using Quantize.Tests;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Core.Tests.Calibration;

/// <summary>Calibration samples from the three folder layouts: order, limits, laziness, and one clear message per problem.</summary>
public class CalibrationDataTests
{
    private static readonly ValueInfo[] TokenInputs =
    [
        new("input_ids", TensorElementType.Int64, [new Dimension(1, null), new Dimension(null, "sequence")]),
        new("attention_mask", TensorElementType.Int64, [new Dimension(1, null), new Dimension(null, "sequence")]),
    ];

    private static readonly ValueInfo[] ImageInput = [new("image", TensorElementType.Float32, [new Dimension(1, null), new Dimension(3, null)])];

    [Fact]
    public void Sample_folders_mix_pb_and_npy_files_and_come_in_ordinal_order()
    {
        using var folder = new TempFolder();
        // Ordinal order: "S10" < "s02" < "s1" (upper case first, then character by character).
        foreach (var (name, length) in new[] { ("s1", 3), ("s02", 5), ("S10", 2) })
        {
            string sample = folder.Folder(Path.Combine("data", name));
            long[] ids = Enumerable.Range(100, length).Select(i => (long)i).ToArray();
            WriteTensorProto(Path.Combine(sample, "input_ids.pb"), "input_ids", ids, [1, length]);
            File.WriteAllBytes(Path.Combine(sample, "attention_mask.npy"), NumpyWriter.NpyOf("<i8", [1, length], Enumerable.Repeat(1L, length).ToArray()));
            File.WriteAllText(Path.Combine(sample, "notes.txt"), "ignored");
        }
        File.WriteAllText(folder["data/index.tsv"], "files beside the sample folders are ignored");

        var data = CalibrationData.FromFolder(folder["data"], TokenInputs);
        Assert.Equal(3, data.Count);
        var samples = data.ToList();
        Assert.Equal(["S10", "s02", "s1"], samples.Select(s => s.Name));
        Assert.Equal([100L, 101, 102, 103, 104], samples[1].Inputs["input_ids"].ToArray<long>());
        Assert.Equal([1, 5], samples[1].Inputs["attention_mask"].Shape.ToArray());
        Assert.Equal(["S10", "s02"], CalibrationData.FromFolder(folder["data"], TokenInputs, limit: 2).Select(s => s.Name));
        Assert.Equal(["S10"], data.Take(1).Select(s => s.Name));
    }

    [Fact]
    public void Npz_and_npy_folders_give_one_sample_per_file()
    {
        using var folder = new TempFolder();
        string npz = folder.Folder("npz"), npy = folder.Folder("npy");
        for (int i = 0; i < 3; i++)
        {
            long[] ids = [101, 7 + i, 102];
            NumpyWriter.Npz(Path.Combine(npz, $"sample{i}.npz"), [
                ("input_ids", NumpyWriter.NpyOf("<i8", [1, 3], ids)),
                ("attention_mask", NumpyWriter.NpyOf("<i8", [1, 3], new long[] { 1, 1, 1 })),
            ], compressed: i == 1);
            File.WriteAllBytes(Path.Combine(npy, $"image{i}.npy"), NumpyWriter.NpyOf("<f4", [1, 3], new[] { i, 0.5f, -i }));
        }

        var tokens = CalibrationData.FromFolder(npz, TokenInputs).ToList();
        Assert.Equal(["sample0.npz", "sample1.npz", "sample2.npz"], tokens.Select(s => s.Name));
        Assert.Equal([101L, 8, 102], tokens[1].Inputs["input_ids"].ToArray<long>());

        var images = CalibrationData.FromFolder(npy, ImageInput).ToList();
        Assert.Equal(3, images.Count);
        Assert.Equal([2f, 0.5f, -2f], images[2].Inputs["image"].ToArray<float>());

        var multiInput = Assert.Throws<InvalidDataException>(() => CalibrationData.FromFolder(npy, TokenInputs));
        Assert.Contains("one input", multiInput.Message);
        Assert.Contains("input_ids, attention_mask", multiInput.Message);
    }

    [Fact]
    public void Samples_are_read_one_at_a_time_as_they_are_reached()
    {
        using var folder = new TempFolder();
        string npy = folder.Folder("npy");
        File.WriteAllBytes(Path.Combine(npy, "a.npy"), NumpyWriter.NpyOf("<f4", [1, 3], new[] { 1f, 2f, 3f }));
        File.WriteAllBytes(Path.Combine(npy, "b.npy"), [1, 2, 3]); // damaged, but only read when reached

        var data = CalibrationData.FromFolder(npy, ImageInput);
        using var samples = data.GetEnumerator();
        Assert.True(samples.MoveNext());
        Assert.Equal("a.npy", samples.Current.Name);
        var error = Assert.Throws<InvalidDataException>(() => samples.MoveNext());
        Assert.StartsWith(Path.Combine(npy, "b.npy") + ":", error.Message);
    }

    [Fact]
    public void Missing_files_wrong_types_and_shapes_name_the_file_and_the_fix()
    {
        using var folder = new TempFolder();
        string missing = folder.Folder("missing/s0");
        WriteTensorProto(Path.Combine(missing, "input_ids.pb"), "input_ids", new long[] { 1, 2 }, [1, 2]);
        var error = Assert.Throws<InvalidDataException>(() => CalibrationData.FromFolder(folder["missing"], TokenInputs).ToList());
        Assert.StartsWith(missing + ":", error.Message);
        Assert.Contains("'attention_mask'", error.Message);
        Assert.Contains("attention_mask.pb and attention_mask.npy", error.Message);

        string wrongType = folder.Folder("type");
        File.WriteAllBytes(Path.Combine(wrongType, "x.npy"), NumpyWriter.NpyOf("<f8", [1, 3], new[] { 1.0, 2.0, 3.0 }));
        error = Assert.Throws<InvalidDataException>(() => CalibrationData.FromFolder(wrongType, ImageInput).ToList());
        Assert.StartsWith(Path.Combine(wrongType, "x.npy") + ":", error.Message);
        Assert.Contains("must be float32", error.Message);
        Assert.Contains("astype(numpy.float32)", error.Message);

        string wrongShape = folder.Folder("shape");
        File.WriteAllBytes(Path.Combine(wrongShape, "x.npy"), NumpyWriter.NpyOf("<f4", [1, 4], new[] { 1f, 2f, 3f, 4f }));
        error = Assert.Throws<InvalidDataException>(() => CalibrationData.FromFolder(wrongShape, ImageInput).ToList());
        Assert.Contains("must have shape [1, 3]", error.Message);
        Assert.Contains("[1, 4]", error.Message);

        string badPb = folder.Folder("badpb/s0");
        File.WriteAllBytes(Path.Combine(badPb, "input_ids.pb"), [0xFF, 0xFF, 0xFF]);
        File.WriteAllBytes(Path.Combine(badPb, "attention_mask.npy"), NumpyWriter.NpyOf("<i8", [1, 1], new long[] { 1 }));
        error = Assert.Throws<InvalidDataException>(() => CalibrationData.FromFolder(folder["badpb"], TokenInputs).ToList());
        Assert.StartsWith(Path.Combine(badPb, "input_ids.pb") + ":", error.Message);
        Assert.Contains("TensorProto", error.Message);

        string both = folder.Folder("both/s0");
        File.WriteAllBytes(Path.Combine(both, "image.npy"), NumpyWriter.NpyOf("<f4", [1, 3], new[] { 1f, 2f, 3f }));
        WriteTensorProto(Path.Combine(both, "image.pb"), "image", new[] { 1f, 2f, 3f }, [1, 3]);
        error = Assert.Throws<InvalidDataException>(() => CalibrationData.FromFolder(folder["both"], ImageInput).ToList());
        Assert.Contains("both image.pb and image.npy", error.Message);
    }

    [Fact]
    public void Empty_missing_and_mixed_folders_are_refused_at_once()
    {
        using var folder = new TempFolder();
        Assert.Contains("does not exist", Assert.Throws<InvalidDataException>(() => CalibrationData.FromFolder(folder["nowhere"], ImageInput)).Message);
        string empty = folder.Folder("empty");
        File.WriteAllText(Path.Combine(empty, "README.md"), "no samples");
        Assert.Contains("holds no calibration samples", Assert.Throws<InvalidDataException>(() => CalibrationData.FromFolder(empty, ImageInput)).Message);
        string mixed = folder.Folder("mixed");
        folder.Folder("mixed/s0");
        File.WriteAllBytes(Path.Combine(mixed, "a.npy"), NumpyWriter.NpyOf("<f4", [1, 3], new[] { 1f, 2f, 3f }));
        Assert.Contains("mixes", Assert.Throws<InvalidDataException>(() => CalibrationData.FromFolder(mixed, ImageInput)).Message);
    }

    [Fact]
    public void The_shared_ResNet18_and_MiniLM_samples_read_against_their_models()
    {
        var resnet = OnnxModel.Load(RealModels.ResNet18Path);
        var images = CalibrationData.FromFolder(SharedData.Require("calibration/resnet18"), resnet, limit: 3).ToList();
        Assert.Equal(3, images.Count);
        Assert.All(images, s => Assert.Equal([1, 3, 224, 224], s.Inputs["Input247"].Shape.ToArray()));

        var minilm = OnnxModel.Load(RealModels.ReadManifestResource(RealModels.MiniLMAssemblyPath, RealModels.MiniLMResource), "minilm.onnx");
        var all = CalibrationData.FromFolder(SharedData.Require("calibration/minilm"), minilm);
        Assert.Equal(96, all.Count);
        var first = all.First();
        Assert.Equal("s000", first.Name);
        Assert.Equal(["input_ids", "attention_mask", "token_type_ids"], first.Inputs.Keys);
        Assert.Equal(101L, first.Inputs["input_ids"].ToArray<long>()[0]); // [CLS]
    }

    internal static void WriteTensorProto<T>(string path, string name, T[] values, int[] shape) where T : struct
    {
        var proto = new TensorProto
        {
            Name = name,
            DataType = OnnxElementTypes.ToOnnx(Tensor.ElementTypeOf<T>()),
            RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())),
        };
        proto.Dims.AddRange(shape.Select(d => (long)d));
        File.WriteAllBytes(path, proto.ToByteArray());
    }
}
